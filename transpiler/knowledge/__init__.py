"""Layer 3, release knowledge: op registries of every release (dumped from the real runtimes) and OpDef questions."""
