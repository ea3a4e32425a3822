"""The pipeline's data logic: small pure functions, and the Prefect tasks built from them.

The convention, and why. Each step is written once, as a plain function named for what it does
(`read_trip_file`, `normalize_table`, `split_valid`, `add_derived_columns`, `tasks.lake.write_month`,
`load_zone_table`): tests, scripts, the benchmark and the streaming engine call it directly, with no Prefect run
around it. Where a flow runs a step as its own task run, the task is made from that same function in one line,
with the options that belong to the step and nowhere else, e.g.

    extract = task(name="extract", cache_policy=NO_CACHE, **network_retry_options())(read_trip_file)

and Prefect keeps the function as `extract.fn`. So there is no hand-written `@task` twin whose body only calls
the function, which could drift from it (another docstring, another signature); `some_task.fn` is the plain step
wherever a caller holds the task. A task gets its own body only when it adds something the function must not
do: `tasks.pipeline.etl_month` holds the month's write lock around a whole month, from extract to the lake's
commit. `cache_policy=NO_CACHE` on every step that takes a table: the default policy would hash the whole
table to build a cache key (see `flows/quote.py`).

Logging: a step logs through `tasks.run_log.step_logger`, so its lines land on the run's page in the UI when a
run called it, and in ordinary Python logging otherwise.
"""
