"""Prefect blocks (S3 credentials and buckets) for the S3 lessons: creation and loading live here."""
