"""Prefect flows: `etl` is the pipeline; each other module is one lesson built from the same tasks."""
