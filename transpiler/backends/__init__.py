"""Layer 6, back ends: the graph writer (SavedModel / GraphDef / meta graph) and the native TF 2 SavedModel builder."""
