"""The benchmark's figures can be trusted: every row is there, each ratio follows from the samples recorded next
to it, and the committed tables are exactly what `benchmarks/report.py` renders from the committed JSON."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys

import pytest

from benchmarks.report import (
    README_END,
    README_START,
    readme_block,
    render_markdown,
    render_readme_block,
    update_readme,
)
from tasks import settings
from tasks.measure import Result, interleaved_timings

BENCHMARKS = settings.PROJECT_ROOT / "benchmarks"
EXPECTED = {
    "quote_collection",
    "quote_dataframe",
    "no_cache_dataframe",
    "cache",
    "disk_io",
    "serializer",
    "serializer_fastest_compressed",
    "serializer_size",
    "s3_results",
    "dask",
    "dask_polars",
    "dask_wall_pandas",
    "dask_wall_polars",
    "overhead",
}
UNITS = {"s", "s/month", "MiB"}
# The package marker, the benchmark itself, the pipeline every lesson is measured against (with its runner
# choice), and the mart.
NOT_LESSONS = {"flows/__init__.py", "flows/benchmark.py", "flows/etl.py", "flows/runners.py", "flows/mart.py"}
SERIALIZERS = {  # every one the issue asks for, recognized by its label in the serializer table
    "pickle": lambda label: "pickle" in label and "compress" not in label,
    **{lib: lambda label, lib=lib: lib in label for lib in ("zlib", "bz2", "lzma", "parquet")},
}
MINIMUM_RATIO = re.compile(r"\(?>= ([\d.]+)x\)?$")


def check_document(document: dict) -> None:
    """What a reader of results.json relies on, whatever the figures are."""
    results = document["results"]
    names = [result["name"] for result in results]
    assert set(names) >= EXPECTED, f"missing rows: {EXPECTED - set(names)}"
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


def test_quick_benchmark_writes_consistent_results(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["quick"] and document["rows_per_month"] > 0
    check_document(document)
    assert (tmp_path / "results.md").read_text() == render_markdown(document)
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
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


def test_the_benchmarks_prefect_server_is_set_for_this_process_without_touching_its_environment(tmp_path):
    """`harness.prefect_server` starts a real server and points this process at it through Prefect's settings; the
    environment (which every later child process and thread would inherit) is the same before, during and after."""
    import os

    from prefect.settings import PREFECT_API_URL

    import servers
    from benchmarks import harness

    before = dict(os.environ)
    with harness.prefect_server(tmp_path) as api_url:
        assert PREFECT_API_URL.value() == api_url and servers.http_ok(f"{api_url}/health")
        assert dict(os.environ) == before
    assert dict(os.environ) == before and PREFECT_API_URL.value() != api_url
    with pytest.raises(OSError):  # stopped by the process id it recorded
        servers.http_ok(f"{api_url}/health")
