"""The pipeline's data logic: small pure functions, and the Prefect tasks built from them.

The convention, and why. Each step is written once, as a plain function named for what it does (`read_trip_file`,
`normalize_table`, `split_valid`, `add_derived_columns`, `tasks.lake.write_month`, `load_zone_table`), which tests,
scripts, the benchmark and the streaming engine call with no Prefect run around it. A flow's task is made from
that same function in one line, with the options that belong to the step and nowhere else:

    extract = task(name="extract", cache_policy=NO_CACHE, **network_retry_options())(read_trip_file)

So no hand-written `@task` twin can drift from it, and `extract.fn` is the plain step. A task gets a body of its
own only to add what the function must not do: `tasks.pipeline.etl_month` holds the month's write lock from
extract to commit. Every step that takes a table has `cache_policy=NO_CACHE`: the default policy would hash the
whole table (`flows/quote.py`). A step logs through `tasks.run_log.step_logger`: onto the run's page inside a run,
to plain Python logging outside one.
"""
