"""Layer 7, the pipeline: pipelines as data (pipelines.py), plan / convert / explain (convert.py), check (check.py), the report."""
