"""The benchmark's figures can be trusted: every row is there, each ratio follows from the samples recorded next
to it, and the committed tables are exactly what `benchmarks/report.py` renders from the committed JSON."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks import scale_rows
from benchmarks.report import (
    README_END,
    README_START,
    readme_block,
    render_markdown,
    render_readme_block,
    update_readme,
)
from benchmarks.scale_chart import SCALE_CHART
from tasks import settings
from tasks.observe.measure import Result, interleaved_timings, map_in_context

BENCHMARKS = settings.PROJECT_ROOT / "benchmarks"
SCALE_ROWS = {
    *("year_wall", "year_linearity", "year_peak_rss", "month_peak_rss", "month_peak_rss_growth", "dask_year"),
    *("overhead_year", "dask_scaling"),
}
EXPECTED = {
    "quote_collection",
    "quote_dataframe",
    "no_cache_dataframe",
    "cache",
    "cache_without_heartbeats",
    "disk_io",
    "serializer",
    "serializer_fastest_compressed",
    "serializer_size",
    "s3_results",
    "dask",
    "dask_polars",
    "dask_wall_pandas",
    "dask_wall_polars",
    "scheduler_growth",
    "overhead",
    "overhead_heartbeats",
    "anchor_month",
    "cache_year",
    *SCALE_ROWS,
}
UNITS = {"s", "s/month", "MiB", "core-s"}
# The package marker, the benchmark itself, the pipeline every lesson is measured against (with its runner
# choice), and the mart.
NOT_LESSONS = {
    *("flows/__init__.py", "flows/etl.py", "flows/etl_cli.py", "flows/runners.py", "flows/mart.py"),
    "flows/perf_report.py",  # run-history analysis, measured by nothing: it reads what the runs recorded
    "flows/maintenance.py",  # the lake's upkeep (vacuum, compaction, rollback): no optimization to measure
}
SERIALIZERS = {  # every one the issue asks for, recognized by its label in the serializer table
    "pickle": lambda label: "pickle" in label and "compress" not in label,
    **{lib: lambda label, lib=lib: lib in label for lib in ("zlib", "bz2", "lzma", "parquet")},
}
MINIMUM_RATIO = re.compile(r"\(?>= ([\d.]+)x\)?$")


def check_rows(results: list[dict]) -> None:
    """Each row alone: its medians, ranges and ratio follow from its samples; its unit and lesson exist."""
    names = [result["name"] for result in results]
    assert len(names) == len(set(names)), "a row name appears twice"
    for result in results:
        name = result["name"]
        for variant in ("baseline", "optimized"):
            samples = result["repeats"][variant]
            assert len(samples) >= 3, f"{name} {variant}: {len(samples)} repeats"
            assert all(sample > 0 for sample in samples), f"{name} {variant}: {samples}"
            assert result[variant] == statistics.median(samples), f"{name} {variant} is not the median"
            assert (result["min"][variant], result["max"][variant]) == (min(samples), max(samples)), name
            assert result["min"][variant] <= result[variant] <= result["max"][variant], name
        assert result["ratio"] == pytest.approx(result["baseline"] / result["optimized"], rel=1e-4, abs=1e-4), name
        assert result["unit"] in UNITS, name
        assert (settings.PROJECT_ROOT / result["lesson"]).is_file(), f"{name}: no lesson {result['lesson']}"
        if (minimum := MINIMUM_RATIO.search(result["target"])) and " and " not in result["target"]:
            assert result["met"] == (result["ratio"] >= float(minimum.group(1))), name


def check_document(document: dict) -> None:
    """What a reader of results.json relies on, whatever the figures are."""
    results = document["results"]
    names = [result["name"] for result in results]
    assert set(names) >= EXPECTED, f"missing rows: {EXPECTED - set(names)}"
    check_rows(results)
    check_scale_section(document)
    lessons = {
        path.relative_to(settings.PROJECT_ROOT).as_posix() for path in (settings.PROJECT_ROOT / "flows").glob("*.py")
    }
    unmeasured = lessons - NOT_LESSONS - {result["lesson"] for result in results}
    assert not unmeasured, f"lessons without a benchmark row: {unmeasured}"
    serializer = next(result for result in results if result["name"] == "serializer")
    labels = [row["serializer"] for row in serializer["details"]]
    assert all(any(map(is_kind, labels)) for is_kind in SERIALIZERS.values()), labels
    for row in serializer["details"]:
        assert row["stored MiB"] > 0
        for step in ("write s", "read s"):
            assert row[step]["min"] <= row[step]["median"] <= row[step]["max"], row
    dask = next(result for result in results if result["name"] == "dask")
    assert "cluster start excluded" in dask["metric"]
    starts = [value for row in dask["details"] for key, value in row.items() if key.startswith("cluster start")]
    assert starts and all(0 < start["min"] <= start["median"] <= start["max"] for start in starts), dask["details"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, real_prefect_server):
    """One `python -m benchmarks.run --quick`, every section on tiny months (the scale section's real processes and
    two-worker Dask cluster included): the machinery end to end, shared by the tests that read what it wrote. It
    runs against the session's real server, as a `benchmark` deployment's run does against its own (the harness
    starts one only when none is configured: `test_the_benchmarks_prefect_server_is_set_...` below)."""
    out = tmp_path_factory.mktemp("quick-bench")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        env={**os.environ, "PREFECT_API_URL": real_prefect_server["PREFECT_API_URL"]},
        capture_output=True,
        text=True,
        timeout=1200,  # several times what a quick run takes on a quiet 2-core machine
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text())


def test_quick_benchmark_writes_consistent_results(quick_run, tmp_path):
    out, document = quick_run
    assert document["quick"] and document["rows_per_month"] > 0
    check_document(document)
    assert (out / "results.md").read_text() == render_markdown(document)
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    assert update_readme(document, readme)
    assert readme.read_text() == f"intro\n{render_readme_block(document)}\nrest\n"


def test_committed_results_are_what_report_renders():
    """Fails after any hand edit of results.md or the README's block, or a results.json from another format:
    regenerate all three with `make bench`."""
    document = json.loads((BENCHMARKS / "results.json").read_text())
    assert not document["quick"] and not document.get("only"), "commit only the results of a full `make bench`"
    check_document(document)
    assert (BENCHMARKS / "results.md").read_text() == render_markdown(document)
    assert readme_block((settings.PROJECT_ROOT / "README.md").read_text()) == render_readme_block(document)


def test_every_row_is_documented():
    """benchmarks/README.md says what each row compares and which lesson it measures."""
    text = (BENCHMARKS / "README.md").read_text()
    assert all(f"`{name}`" in text for name in EXPECTED), [n for n in EXPECTED if f"`{n}`" not in text]


def test_readme_without_markers_is_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no generated block here\n")
    assert not update_readme({"results": []}, readme)
    assert readme.read_text() == "no generated block here\n"


def test_result_reports_medians_and_range_of_its_repeats():
    row = Result.from_repeats("x", "seconds", [3.0, 1.0, 2.0], [0.5, 2.0, 1.0], 10).to_dict()
    assert (row["baseline"], row["optimized"], row["ratio"]) == (2.0, 1.0, 2.0)
    assert row["min"] == {"baseline": 1.0, "optimized": 0.5} and row["max"] == {"baseline": 3.0, "optimized": 2.0}
    assert row["repeats"] == {"baseline": [3.0, 1.0, 2.0], "optimized": [0.5, 2.0, 1.0]}


def test_interleaved_timings_warm_up_and_alternate_the_variants():
    calls: list[str] = []
    samples = interleaved_timings({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeat=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert [len(samples["a"]), len(samples["b"])] == [3, 3]


def test_a_pools_threads_hand_their_children_the_runs_prefect_server():
    """The run's server URL is a context variable (`temporary_settings`), which a plain `pool.map` loses in its
    threads: their children would each start a temporary server of their own."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = "http://127.0.0.1:9/api"
    with temporary_settings({PREFECT_API_URL: url}), ThreadPoolExecutor(2) as pool:
        seen = list(map_in_context(pool, lambda _: PREFECT_API_URL.value(), range(4)))
        lost = list(pool.map(lambda _: PREFECT_API_URL.value(), range(4)))
    assert seen == [url] * 4
    assert url not in lost  # what the pool does without it: the reason it exists


def test_the_benchmarks_prefect_server_is_set_for_this_process_without_touching_its_environment(tmp_path, prefect_home):
    """`harness.prefect_server` starts a real server and points this process at it through Prefect's settings; the
    environment (which every later child process and thread would inherit) is the same before, during and after."""
    import os

    from prefect.settings import PREFECT_API_URL

    import servers
    from benchmarks import harness

    prefect_home(tmp_path / "prefect-home")  # where the harness puts the server's home: its database migrated
    before = dict(os.environ)
    with harness.prefect_server(tmp_path) as api_url:
        assert PREFECT_API_URL.value() == api_url and servers.http_ok(f"{api_url}/health")
        assert dict(os.environ) == before
    assert dict(os.environ) == before and PREFECT_API_URL.value() != api_url
    with pytest.raises(OSError):  # stopped by the process id it recorded
        servers.http_ok(f"{api_url}/health")


# issue 8's targets, as the issue states them: a missed target stays missed, it is never tuned to be met
ISSUE_TARGETS = {"linear": 1.2, "process MiB": 1024}
# issue 19's, on the same terms; it restates year_wall as "within 1.15x of bare polars in 2 processes" (issue 8's
# "15 s and within 1.2x" is gone with it)
ISSUE_19_TARGETS = {"month MiB": 600, "month growth": 1.15, "overhead year": 1.05, "year over bare": 1.15}


def check_scale_section(document: dict) -> None:
    """The scale rows take their sides from the runs in their details, and `met` is the issue's target checked."""
    rows = {result["name"]: result for result in document["results"] if result["name"] in SCALE_ROWS}
    assert set(rows) == SCALE_ROWS, f"missing scale rows: {SCALE_ROWS - set(rows)}"
    curve = {(row["runner"], row["months"]): row for row in rows["year_wall"]["details"]}
    points = sorted({months for runner, months in curve if runner == scale_rows.THREADS})
    year, first, per_month = points[-1], points[0], document["rows_per_month"]
    assert first == 1 and year > first, points
    for runner in scale_rows.CURVE:
        assert {months for name, months in curve if name == runner} == set(points), runner
    for (runner, months), row in curve.items():
        for column in ("wall s", "rows/s", "largest process peak MiB"):
            assert 0 < row[column]["min"] <= row[column]["median"] <= row[column]["max"], (runner, months, column)
        rows_read = months * per_month * (scale_rows.BIG_MONTH_FACTOR if runner == scale_rows.BIG_MONTH else 1)
        assert rows_read / row["wall s"]["max"] <= row["rows/s"]["median"] * (1 + 1e-9), (runner, months)
        assert row["rows/s"]["median"] <= rows_read / row["wall s"]["min"] * (1 + 1e-9), (runner, months)
    processes = {runner: curve[runner, year]["peak MiB by process (medians)"] for runner in scale_rows.CURVE}
    assert all(f"worker {n} " in processes[scale_rows.DASK] for n in (1, 2)), processes  # each worker's own peak
    assert "flow " in processes[scale_rows.DASK] and "process 2 " in processes[scale_rows.BARE_2], processes

    wall, best = (
        rows["year_wall"],
        min((scale_rows.THREADS, scale_rows.DASK), key=lambda r: curve[r, year]["wall s"]["median"]),
    )
    assert best in wall["metric"]
    assert wall["baseline"] == curve[scale_rows.BARE_2, year]["wall s"]["median"]
    assert wall["optimized"] == curve[best, year]["wall s"]["median"]
    assert wall["met"] == (wall["optimized"] <= wall["baseline"] * ISSUE_19_TARGETS["year over bare"])
    linear = rows["year_linearity"]
    assert linear["baseline"] == pytest.approx(curve[best, year]["wall s"]["median"] / year)
    assert linear["optimized"] == pytest.approx(curve[best, first]["wall s"]["median"] / first)
    assert linear["met"] == (linear["ratio"] <= ISSUE_TARGETS["linear"])
    peak = rows["year_peak_rss"]
    assert peak["baseline"] == curve[scale_rows.PANDAS, 1]["largest process peak MiB"]["median"]
    for runner in scale_rows.AT_YEAR:
        assert peak["optimized"] >= curve[runner, year]["largest process peak MiB"]["median"], runner
    assert peak["met"] == (peak["optimized"] <= ISSUE_TARGETS["process MiB"])
    month_peak = rows["month_peak_rss"]
    assert month_peak["baseline"] == curve[scale_rows.PANDAS, 1]["largest process peak MiB"]["median"]
    assert month_peak["optimized"] == curve[scale_rows.THREADS, 1]["largest process peak MiB"]["median"]
    assert month_peak["met"] == (month_peak["optimized"] <= ISSUE_19_TARGETS["month MiB"])
    growth = rows["month_peak_rss_growth"]
    assert growth["baseline"] == curve[scale_rows.BIG_MONTH, 1]["largest process peak MiB"]["median"]
    assert growth["optimized"] == curve[scale_rows.THREADS, 1]["largest process peak MiB"]["median"]
    assert growth["met"] == (growth["ratio"] <= ISSUE_19_TARGETS["month growth"])
    dask = rows["dask_year"]
    assert dask["target"] == ">= 1.6x", dask["target"]  # met is checked against it by check_rows
    assert dask["baseline"] == curve[scale_rows.SEQUENTIAL, year]["wall s"]["median"]
    assert dask["optimized"] == curve[scale_rows.DASK, year]["wall s"]["median"]
    starts = [value for row in dask["details"] for key, value in row.items() if key.startswith("cluster start")]
    assert starts and all(start["min"] > 0 for start in starts), dask["details"]
    overhead = rows["overhead_year"]  # a cost: flow over plain, the same runs as year_wall's when threads is best
    assert overhead["baseline"] == curve[scale_rows.THREADS, year]["wall s"]["median"]
    assert overhead["optimized"] == curve[scale_rows.BARE_2, year]["wall s"]["median"]
    assert overhead["met"] == (overhead["ratio"] <= ISSUE_19_TARGETS["overhead year"])
    scaling = rows["dask_scaling"]  # per month, so its ratio is the two clusters' throughput ratio
    assert scaling["baseline"] == pytest.approx(curve[scale_rows.DASK_ONE, year]["wall s"]["median"] / year)
    assert scaling["optimized"] == pytest.approx(curve[scale_rows.DASK, year]["wall s"]["median"] / year)
    assert "worker 1 " in curve[scale_rows.DASK_ONE, year]["peak MiB by process (medians)"]


def test_quick_scale_section_measures_every_runner(quick_run):
    """The scale section on tiny months: real processes, a real two-worker Dask cluster, the chart."""
    out, document = quick_run
    check_rows(document["results"])
    check_scale_section(document)
    markdown = (out / "results.md").read_text()
    assert f"]({SCALE_CHART})" in markdown
    assert (out / SCALE_CHART).read_bytes().startswith(b"\x89PNG")
    assert f"(benchmarks/{SCALE_CHART})" in render_readme_block(document)


def test_scale_plan_repeats_every_measurement_a_row_rests_on():
    repeats, points = 3, (1, 4, 12)
    counts = Counter((job.variant, job.months) for job in scale_rows.planned(points, repeats))
    row_sides = [(runner, 12) for runner in scale_rows.AT_YEAR]
    row_sides += [(scale_rows.THREADS, 1), (scale_rows.DASK, 1), (scale_rows.PANDAS, 1), (scale_rows.BIG_MONTH, 1)]
    assert all(counts[side] == repeats for side in row_sides), counts
    assert all(counts[runner, months] >= 1 for runner in scale_rows.CURVE for months in points), counts
    rounds = [job.repeat for job in scale_rows.planned(points, repeats)]
    assert rounds == sorted(rounds), "each round runs every variant before the next round starts"


@pytest.mark.parametrize("faster", [scale_rows.THREADS, scale_rows.DASK])
def test_scale_rows_take_each_side_from_its_runs(faster):
    """Made-up runs (seconds and peaks that differ by variant, month count and round) through the row builder:
    each row must pick the runs the issue names, whichever runner is faster."""
    per_month, points = 1000, (1, 2, 4)
    speed = {scale_rows.DASK_ONE: 2.5, scale_rows.BARE_2: 1.1, scale_rows.SEQUENTIAL: 2.2, scale_rows.PANDAS: 5.0}
    speed |= {scale_rows.THREADS: 1.3, scale_rows.DASK: 1.4, scale_rows.BIG_MONTH: 8.0, faster: 1.2}
    runs = []
    for job in scale_rows.planned(points, 3):
        peaks = {"flow": 100.0 + 10 * job.months + job.repeat}
        if job.variant == scale_rows.DASK:
            peaks |= {"worker 1": 300.0 + job.repeat, "worker 2": 310.0 + job.months}
        if job.variant == scale_rows.DASK_ONE:
            peaks |= {"worker 1": 320.0 + job.repeat}
        if job.variant == scale_rows.BIG_MONTH:
            peaks = {"flow": 180.0 + job.repeat}
        if job.variant == scale_rows.BARE_2:
            peaks = {f"process {n}": 90.0 + n + job.months for n in (1, 2)}
        months = job.months * (scale_rows.BIG_MONTH_FACTOR if job.variant == scale_rows.BIG_MONTH else 1)
        seconds = speed[job.variant] * job.months + 0.1 * job.repeat
        runs.append(scale_rows.Run(job, seconds, months * per_month, peaks))
    cluster = {"cluster start s (apart)": [3.0], "fresh workers s (before each Dask run, apart)": [1.0, 1.5]}
    results = scale_rows.scale_results(runs, per_month, points, cluster)
    document = {"rows_per_month": per_month, "results": [result.to_dict() for result in results]}
    check_rows(document["results"])
    check_scale_section(document)
    wall = next(row for row in document["results"] if row["name"] == "year_wall")
    assert f"({faster})" in wall["metric"]
