"""The pipeline's data logic: small pure functions, each with a thin Prefect `@task` wrapper beside it."""
