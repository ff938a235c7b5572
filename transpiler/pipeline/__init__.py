"""Layer 7, the pipeline: pipelines as data (pipelines.py), plan / convert / check / explain (convert.py), the report."""
