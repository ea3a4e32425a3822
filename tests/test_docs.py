"""The course site: it builds offline with --strict, shows the project's own figures, and its exercises' solutions work.

Each lesson page ends with an exercise whose solution is a file in docs/exercises/ (the page includes that file).
The tests below check each solution against the real thing it teaches: Prefect's argument resolution, a flow run
that is or is not `Cached`, an `S3Bucket` block on a moto server, polars' optimized plan, Prefect's serializers, a
Dask cluster's workers.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from types import ModuleType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import settings
from tasks.pipeline.rules import RULES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXERCISES = PROJECT_ROOT / "docs" / "exercises"
# The lesson page that shows each benchmark row (by the row's `lesson` module).
LESSON_PAGES = {
    "flows/quote.py": "lessons/quote",
    "flows/s3_results.py": "lessons/s3-results",
    "flows/disk_io.py": "lessons/disk-io",
    "flows/caching.py": "lessons/caching",
    "flows/compression.py": "lessons/compression",
    "flows/dask_runner.py": "lessons/dask",
    "flows/etl.py": "scale",
    "flows/monitoring.py": "monitoring",
}


def test_each_lesson_module_links_its_page():
    """From the code to the page: each lesson module's docstring names its course page, and the page exists."""
    for module, page in LESSON_PAGES.items():
        assert f"Course page: `docs/{page}.md`" in (PROJECT_ROOT / module).read_text(), module
        assert (PROJECT_ROOT / "docs" / f"{page}.md").is_file(), page


def load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercise(name: str) -> ModuleType:
    return load_file(EXERCISES / f"{name}.py")


# --- The site ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(course_site) -> Path:
    """The site as `make docs` builds it (`course_site` in tests/conftest.py: built once for this file and
    tests/test_site.py)."""
    return course_site


def page_text(site: Path, page: str) -> str:
    """A page's article as plain text (tags dropped), to search for what it shows."""
    document = (site / page / "index.html").read_text()
    article = document[document.index("<article") : document.index("</article>")]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", article)))


def test_pipeline_page_lists_every_rule_in_order_with_its_reason(site):
    text = page_text(site, "pipeline")
    positions = [text.index(f"{number} {rule.reason} ") for number, rule in enumerate(RULES, start=1)]
    assert positions == sorted(positions)


def test_every_benchmark_row_appears_with_its_measured_ratio_on_its_pages(site):
    """On the benchmark page, and on its lesson's page when the module it measures has one."""
    results = json.loads((PROJECT_ROOT / "benchmarks" / "results.json").read_text())["results"]
    for result in results:
        pages = ["benchmark", *([LESSON_PAGES[result["lesson"]]] if result["lesson"] in LESSON_PAGES else [])]
        for page in pages:
            text = page_text(site, page)
            assert f"{result['name']} " in text, (page, result["name"])
            assert f"{result['ratio']:.2f}x" in text, (page, result["name"])


def test_charts_are_the_projects_own_files(site):
    for published, drawn in [
        ("assets/benchmark-results.png", "benchmarks/results.png"),
        ("assets/mart-daily-trips-by-borough.png", "reports/mart/daily-trips-by-borough.png"),
    ]:
        assert (site / published).read_bytes() == (PROJECT_ROOT / drawn).read_bytes()


def test_each_lesson_page_links_its_module_source_and_shows_its_exercise(site):
    for lesson, page in LESSON_PAGES.items():
        if not page.startswith("lessons/"):
            continue
        document = (site / page / "index.html").read_text()
        module = lesson.removesuffix(".py")
        assert f'href="../../source/{module}/"' in document, page
        source = page_text(site, f"source/{module}")
        assert (PROJECT_ROOT / lesson).read_text().splitlines()[0].strip('"') in source
        solution = next(EXERCISES.glob(f"{Path(module).name}.py"))
        first_code_line = next(line for line in solution.read_text().splitlines() if line.startswith("def "))
        assert first_code_line.split("(")[0] in page_text(site, page), page


def test_the_api_reference_has_every_module_of_tasks(site):
    text = page_text(site, "api")
    for path in (PROJECT_ROOT / "tasks").rglob("*.py"):
        module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        assert f"{module} " in text, module


def test_site_loads_nothing_from_the_network(site):
    """Offline: no stylesheet, script or font from another host (Material's Google Fonts are switched off)."""
    remote = re.compile(r'<(?:script[^>]+src|link[^>]+href)="(?:https?:)?//', re.IGNORECASE)
    for page in site.rglob("*.html"):
        document = page.read_text()
        assert not remote.search(document), page
        assert "fonts.googleapis" not in document, page


def test_an_unknown_macro_or_a_missing_benchmark_row_fails_the_build():
    from mkdocs.exceptions import PluginError

    hooks = load_file(PROJECT_ROOT / "docs" / "hooks.py")
    assert "missing_value" in hooks.expand_macros("{{ rules_table() }}", "page.md")
    with pytest.raises(PluginError, match="unknown macro"):
        hooks.expand_macros("{{ typed_by_hand() }}", "page.md")
    with pytest.raises(PluginError, match="no row"):
        hooks.expand_macros('{{ benchmark_rows("no_such_row") }}', "page.md")


# --- The exercises -------------------------------------------------------------------------------------------------


def test_quote_exercise():
    from prefect.utilities.engine import resolve_inputs_sync

    visited = Counter()

    class CountingDict(dict):
        def items(self):
            visited["dicts"] += 1
            return super().items()

    rows = [CountingDict(zone=zone, hour=zone % 24, trips=1) for zone in range(500)]
    resolve_inputs_sync({"rows": rows})
    assert visited["dicts"] >= len(rows)  # without quote, Prefect walks into every dict

    visited.clear()
    resolved = resolve_inputs_sync({"rows": exercise("quote").hand_over_untouched(rows)})
    assert visited["dicts"] == 0
    assert resolved["rows"] is rows


def frame_of(rows: int) -> pd.DataFrame:
    """A task body for the S3 exercise: a frame whose size says which run made it."""
    return pd.DataFrame({"trip": range(rows), "fare": [float(n) for n in range(rows)]})


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_s3_results_exercise(s3_bucket, moto_endpoint):
    import boto3
    from prefect import flow, task
    from prefect.results import ResultRecord
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    block = f"exercise-{uuid.uuid4().hex[:8]}"
    credentials = AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=moto_endpoint),
    )
    S3Bucket(bucket_name=s3_bucket, credentials=credentials).save(block)
    step = exercise("s3_results").persisted_in_s3(task(frame_of), block)

    @flow
    def make_frame(rows: int) -> int:
        return len(step(rows))

    assert make_frame(3) == 3
    assert make_frame(5) == 5  # a second run stores its own object, never the first run's

    listing = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=s3_bucket, Prefix="exercise-s3/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert len(keys) == 2 and len({key.split("/")[1] for key in keys}) == 2  # one flow run id each
    stored = [ResultRecord.deserialize(S3Bucket.load(block).read_path(key)).result for key in keys]
    assert sorted(len(frame) for frame in stored) == [3, 5]
    for frame in stored:
        pd.testing.assert_frame_equal(frame, frame_of(len(frame)))


def test_disk_io_exercise(tmp_path):
    solution = exercise("disk_io")
    boroughs = [["Manhattan", "Queens", "Manhattan", None], ["Bronx", "Manhattan", "Queens"]]
    paths = []
    for number, month in enumerate(boroughs):
        path = tmp_path / f"month-{number}" / "part-0.parquet"
        path.parent.mkdir()
        pq.write_table(pa.table({"pu_borough": month, "fare": [1.0] * len(month), "tip": [0.5] * len(month)}), path)
        paths.append(str(path))

    assert solution.trips_per_borough(paths) == dict(Counter(b for month in boroughs for b in month))
    assert "PROJECT 1/3 COLUMNS" in solution.trips_per_borough_plan(paths).explain()


def month_outputs(source: str, fingerprint: str, output_version: str, service: str, month: str, zones: pa.Table) -> str:
    """A task body for the caching exercise: a fresh value on every real run, so a cached one is recognisable."""
    return uuid.uuid4().hex


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_caching_exercise(tmp_path):
    from prefect import flow, task
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    month_task = task(month_outputs, cache_key_fn=exercise("caching").month_cache_key, persist_result=True)

    @flow
    def month_run(fingerprint: str, output_version: str, zone_names: list[str]) -> str:
        zones = pa.table({"Zone": zone_names})  # a new table object on every run
        source = "yellow_tripdata_2025-01.parquet"
        state = month_task(source, fingerprint, output_version, "yellow", "2025-01", zones, return_state=True)
        return state.name

    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "results"}):
        assert month_run("size=1,etag=a", "v1", ["Astoria"]) == "Completed"
        assert month_run("size=1,etag=a", "v1", ["Astoria", "Bronx Park"]) == "Cached"
        assert month_run("size=2,etag=b", "v1", ["Astoria"]) == "Completed"
        assert month_run("size=1,etag=a", "v2", ["Astoria"]) == "Completed"


def test_compression_exercise():
    solution = exercise("compression")
    frame = pd.read_parquet(settings.SAMPLE_SOURCE.format(service="yellow", month="2025-01"))
    for name, serializer in solution.serializers_to_compare().items():
        pd.testing.assert_frame_equal(serializer.loads(serializer.dumps(frame)), frame, obj=name)
    stored = solution.stored_bytes(frame)
    assert stored["parquet (zstd)"] < stored["compressed/pickle (zlib)"]


def record_where_and_when(month: str) -> tuple[str, float, float]:
    """A month's stand-in: which worker ran it, from when to when."""
    from distributed import get_worker

    started = time.monotonic()
    time.sleep(0.3)
    return get_worker().address, started, time.monotonic()


def some_worker_ran_two_at_once(runs: list[tuple[str, float, float]]) -> bool:
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for worker, started, ended in runs:
        by_worker.setdefault(worker, []).append((started, ended))
    return any(
        later[0] < earlier[1]
        for spans in by_worker.values()
        for earlier, later in zip(sorted(spans), sorted(spans)[1:], strict=False)
    )


def test_dask_exercise():
    from distributed import Client, LocalCluster

    months = [f"2024-{number:02d}" for number in range(1, 7)]
    with (
        LocalCluster(  # in this process, on loopback TCP: nothing looks for a route to the internet
            n_workers=2,
            threads_per_worker=2,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",
            resources={"MONTH": 1},
            dashboard_address="127.0.0.1:0",  # none fixed: 8787 may be taken by another cluster
        ) as cluster,
        Client(cluster) as client,
    ):
        plain = client.gather(client.map(record_where_and_when, months, pure=False))
        assert some_worker_ran_two_at_once(plain)  # two threads per worker: without the resource, months overlap
        solved = exercise("dask_runner").map_one_month_per_worker(client, record_where_and_when, months)
        runs = client.gather(solved)
    assert len(runs) == len(months)
    assert not some_worker_ran_two_at_once(runs)


def test_no_tracked_text_file_holds_a_merge_conflict_marker():
    """A merge left `<<<<<<< HEAD ... >>>>>>> branch` in a course page once, and the site rendered both versions."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    names = [name for name in listed.decode().split("\0") if name.endswith((".md", ".py", ".yaml", ".toml"))]
    texts = [PROJECT_ROOT / name for name in names]
    marked = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for path in texts
        if path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.match(r"(<{7}|>{7})( |$)", line)
    ]
    assert marked == []
