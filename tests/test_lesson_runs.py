"""Every lesson as a user runs it: twice in a row with different parameters, each run answering for its own
parameters, publishing what it measured as its table artifact, and writing nothing under the lake."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from data.generate import write_month
from flows import caching, compression, dask_runner, disk_io, quote, s3_results
from tasks.months import Month

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
ROWS = 1_500
MONTHS = ["2025-01", "2025-02", "2025-03"]


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-source")
    for month in MONTHS:
        write_month("yellow", Month.parse(month), ROWS, folder)
    return str(folder / "{service}_tripdata_{month}.parquet")


@pytest.fixture
def roots(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """`(lake, lessons root)`: the lake is where `TAXI_OUTPUT_ROOT` points, and must stay empty."""
    lake, lessons = tmp_path / "lake", tmp_path / "lessons"
    monkeypatch.setenv("TAXI_OUTPUT_ROOT", str(lake))
    monkeypatch.setenv("TAXI_LESSONS_ROOT", str(lessons))
    return lake, lessons


def latest_artifact_rows(key: str) -> list[dict] | None:
    """The rows of the newest version of the table artifact `key`, read back through the API (None if none).

    The artifact must belong to the run a user starts (a top-level flow run, as a deployment's is), not to a
    subflow: only the run's own Artifacts tab is where a user of the deployment looks."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
        if not artifacts:
            return None
        assert client.read_flow_run(artifacts[0].flow_run_id).parent_task_run_id is None, f"{key} is on a subflow"
    assert artifacts[0].type == "table"
    return json.loads(artifacts[0].data) if isinstance(artifacts[0].data, str) else artifacts[0].data


@dataclass
class Lesson:
    """How to run one lesson, what of its answer must be reproducible, and what its artifact must carry."""

    key: str
    run: Callable[[str, dict], Any]
    first: dict
    second: dict
    answer: Callable[[Any], Any]
    check: Callable[[Any, dict, list[dict]], None]  # (result, parameters, artifact rows)
    writes_output: bool = True


def check_quote(result: list[dict], parameters: dict, rows: list[dict]) -> None:
    assert [row["name"] for row in rows] == ["quote_collection", "quote_dataframe", "no_cache_dataframe"]
    assert [row["rows"] for row in rows] == [parameters["rows"]] * 3
    for row, measured in zip(rows, result, strict=True):
        assert row["baseline"] == pytest.approx(measured["baseline"]) and row["baseline"] > 0
        assert row["optimized"] == pytest.approx(measured["optimized"]) and row["optimized"] > 0


def check_caching(result: list[dict], parameters: dict, rows: list[dict]) -> None:
    assert [r["month"] for r in result] == parameters["months"]
    assert [(r["month"], r["state"], r["rows_in"], r["rows_clean"]) for r in rows] == [
        (r["month"], r["state"], r["rows_in"], r["rows_clean"]) for r in result
    ]
    assert all(r["rows_in"] == ROWS and 0 < r["rows_clean"] <= ROWS for r in result)
    assert all(row["seconds"] > 0 for row in rows)


def check_compression(result: dict, parameters: dict, rows: list[dict]) -> None:
    assert {label: r["rows"] for label, r in result.items()} == dict.fromkeys(
        compression.SERIALIZERS, parameters["rows"]
    )
    assert {row["serializer"]: row["bytes_on_disk"] for row in rows} == {
        label: r["bytes_on_disk"] for label, r in result.items()
    }
    assert all(row["write_s"] > 0 and row["read_s"] > 0 and row["rows"] == parameters["rows"] for row in rows)


def check_disk_io(result: list[dict], parameters: dict, rows: list[dict]) -> None:
    assert {r["month"] for r in result} == set(parameters["months"])
    total = sum(r["trips"] for r in result)
    assert 0.9 * ROWS * len(parameters["months"]) < total <= ROWS * len(parameters["months"])
    [row] = rows
    assert (row["months"], row["trips"]) == (len(parameters["months"]), total)
    assert row["seconds"] > 0 and row["peak_rss_mb"] > 0


def check_dask(result: dict, parameters: dict, rows: list[dict]) -> None:
    months = result["months"]
    assert [m["month"] for m in months] == parameters["months"]
    # The aggregation reads exactly the months this run wrote, not whatever else is under the output folder.
    assert sum(result["trips_per_borough"].values()) == sum(m["rows_clean"] for m in months)
    assert [(row["month"], row["rows_in"], row["rows_clean"]) for row in rows] == [
        (m["month"], m["rows_in"], m["rows_clean"]) for m in months
    ]
    assert all(row["seconds"] > 0 for row in rows)


def check_s3(result: dict, parameters: dict, rows: list[dict]) -> None:
    [month] = parameters["months"]
    assert result["first_trips_object"].endswith(f"yellow-{month}-trips")
    assert sum(result["counts"].values()) == result["first_trips_rows"] > 0.9 * ROWS
    assert {row["object"]: row["bytes"] for row in rows} == result["objects"]
    assert all(size > 0 for size in result["objects"].values())


def months_answer(key: str) -> Callable[[Any], Any]:
    return lambda result: [(m["month"], m["rows_in"], m["rows_clean"]) for m in result[key]]


LESSONS = {
    "quote": Lesson(
        "lesson-quote",
        lambda source, p: quote.quote_lesson(**p),
        {"rows": 1_000},
        {"rows": 2_000},
        lambda result: [r["rows"] for r in result],
        check_quote,
        writes_output=False,
    ),
    "caching": Lesson(
        "lesson-caching",
        lambda source, p: caching.cached_etl(source=source, **p),
        {"months": ["2025-01"]},
        {"months": ["2025-02", "2025-03"]},
        lambda result: [(r["month"], r["rows_in"], r["rows_clean"]) for r in result],
        check_caching,
    ),
    "compression": Lesson(
        "lesson-compression",
        lambda source, p: compression.compression_lesson(**p),
        {"rows": 1_000},
        {"rows": 1_500},
        lambda result: {label: r["rows"] for label, r in result.items()},
        check_compression,
        writes_output=False,
    ),
    "disk-io": Lesson(
        "lesson-disk-io",
        lambda source, p: disk_io.months_via_paths(source=source, **p),
        {"months": ["2025-01"]},
        {"months": ["2025-02", "2025-03"]},
        lambda result: result,
        check_disk_io,
    ),
    "disk-io-in-memory": Lesson(
        "lesson-disk-io-in-memory",
        lambda source, p: disk_io.months_in_memory(source=source, **p),
        {"months": ["2025-01"]},
        {"months": ["2025-02", "2025-03"]},
        lambda result: result,
        check_disk_io,
        writes_output=False,
    ),
    "dask": Lesson(
        "lesson-dask",
        lambda source, p: dask_runner.dask_lesson(source=source, n_workers=1, **p),
        {"months": ["2025-01", "2025-02"]},
        {"months": ["2025-03"]},
        lambda result: (months_answer("months")(result), sum(result["trips_per_borough"].values())),
        check_dask,
    ),
    "s3": Lesson(
        "lesson-s3-results",
        lambda source, p: s3_results.s3_results_lesson(**p),
        {"months": ["2025-01"]},
        {"months": ["2025-02"]},
        lambda result: (result["first_trips_rows"], result["counts"]),
        check_s3,
        writes_output=False,
    ),
}


@pytest.mark.parametrize("name", list(LESSONS))
def test_lesson_answers_for_its_own_parameters_and_publishes_them(name, tiny_source, roots, request):
    lesson = LESSONS[name]
    if name == "s3":
        request.getfixturevalue("s3_bucket")  # the environment points S3 at the session's moto server
    lake, lessons_root = roots
    runs = []
    for parameters in (lesson.first, lesson.second, lesson.first):
        result = lesson.run(tiny_source, parameters)
        runs.append((parameters, result, latest_artifact_rows(lesson.key)))
    answers = [lesson.answer(result) for _, result, _ in runs]
    assert answers[0] == answers[2], "the same parameters must give the same answer after another run"
    assert answers[0] != answers[1], "different parameters must give that run's own answer"
    assert not lake.exists(), f"a lesson wrote under the lake: {sorted(lake.rglob('*.parquet'))[:3]}"
    assert any(lessons_root.rglob("*.parquet")) == lesson.writes_output
    for parameters, result, rows in runs:  # each run's own numbers, in its artifact
        assert rows is not None, f"no artifact {lesson.key}"
        lesson.check(result, parameters, rows)
