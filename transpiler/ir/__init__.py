"""Layer 2, the IR: a GraphDef and its function library as networkx graphs (graph.py), attrs, Const values."""
