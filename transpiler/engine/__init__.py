"""Layer 4, the rules engine: rule files (rules/*.yaml), sandboxed templates, the rule pass, rule examples."""
