"""The pipeline's data logic as plain functions, and the few Prefect tasks made from them.

A month is one composition, `tasks.pipeline.month.run_month` (extract, check, validate, transform, load), and one task,
`etl_month`, that runs it under the month's write lock. Every step is a plain function that tests, scripts and the
benchmark call with no Prefect run around it; where a flow wants a step as a task run, the task is made from the
same function in one line (`load_zones = task(name="load-zones")(load_zone_table)`), so there is no hand-written
twin to drift from it, and `some_task.fn` is the plain step. `cache_policy=NO_CACHE` on any task that takes a
table: the default policy would hash the whole table to build a cache key (see `flows/quote.py`).
"""
