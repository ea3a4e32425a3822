"""Screenshots of the Prefect UI for the course site, taken from a real run by headless Chromium.

`make screenshots` (or `python -m tools.ui_screenshots`) starts a throwaway `prefect server` on a free loopback
port (its own home and process records in a temporary folder: a server you started with `make server` is left
alone), deploys `prefect.yaml` to it the way `make deploy` does, runs the sample ETL and each lesson from their
deployments with a process worker, as `make worker` does (`screenshot_runs`, their outputs in the same temporary
folder), then opens pages in Debian's Chromium through Playwright and saves them under `docs/images/ui/`:

- `flow-run.png`: the `etl-sample` deployment's `taxi_etl` run, one task run per month;
- `timeline.png`: the same run's graph, where the months run side by side;
- `artifact.png`: the run summary artifact `taxi-etl-yellow`;
- `deployments.png`: the deployments `make deploy` created;
- one or two per lesson page (`quote-*.png`, `caching-rerun.png`, ...): what the lesson changes, as the UI
  shows it: the task inputs of a task run handed a future and of one handed `quote(future)`, the `Cached` task
  runs of a rerun, the artifacts the lessons publish, the months' task runs of the Dask lesson.

Each page is captured only once it shows what it is taken for (a month's task run name, the artifact's title, a
deployment's name): a page that never renders it fails the command instead of saving an empty screenshot.
`tests/test_deployments.py` takes the same screenshots from its own deployment runs, into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import servers
from tasks import settings
from tools.deployment_runs import api, deploy, final_states, project_copy, start_worker, trigger

IMAGES_DIR = settings.PROJECT_ROOT / "docs" / "images" / "ui"
VIEWPORT = {"width": 1400, "height": 900}
RENDER_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class Page:
    """One screenshot: the UI path to open and the text that proves the page rendered what it is taken for."""

    file: str
    path: str
    expect: str
    tab: str | None = None  # a tab to open first, by its label
    clip_height: int | None = None  # keep only the top of the page (the run graph)


def chromium_path() -> str | None:
    """Debian's Chromium (`apt-get install chromium`), which Playwright drives instead of downloading its own."""
    return os.environ.get("TAXI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def throwaway_server(workdir: Path) -> Iterator[str]:
    """A real `prefect server` with its home and pid records under `workdir`; yields its API URL, stops it by pid."""
    previous_run_dir, settings.RUN_DIR = settings.RUN_DIR, workdir / "run"
    try:
        yield servers.start_prefect({"PREFECT_HOME": str(workdir / "server-home")})["PREFECT_API_URL"]
    finally:
        servers.stop()
        settings.RUN_DIR = previous_run_dir


# The deployment runs the pages show, as `prefect deployment run <flow>/<deployment> --param ...` starts them: the
# sample ETL and each lesson, writing under `out` (tests/test_deployments.py runs these among all the others).
def screenshot_runs(out: Path) -> dict[str, list[str]]:
    return {
        "taxi_etl/etl-sample": [f"output={out}"],
        "lesson-quote/lesson-quote": [],
        "lesson-s3-results/lesson-s3-results": ['months=["2025-01"]'],
        "lesson-disk-io/lesson-disk-io": [f"output={out / 'disk-io'}"],
        "lesson-caching/lesson-caching": [f"output={out / 'caching'}"],
        "lesson-compression/lesson-compression": ["rows=2000"],
        "lesson-dask/lesson-dask": [f"output={out / 'dask'}"],
        "lesson-monitoring/lesson-monitoring": [],
    }


CACHING = "lesson-caching/lesson-caching"


def rerun_caching(api_url: str, out: Path, cwd: Path, env: dict[str, str]) -> str:
    """`lesson-caching` once more with its parameters unchanged, after its first run: each month comes back `Cached`
    (the caching page's screenshot). Returns the rerun's id once it completed."""
    rerun = trigger(CACHING, screenshot_runs(out)[CACHING], cwd, env)
    if (state := final_states(api_url, {CACHING: rerun}, 300)[CACHING])["type"] != "COMPLETED":
        raise RuntimeError(f"{CACHING} rerun ended {state['type']}: {state.get('message')}")
    return rerun


def first(api_url: str, path: str, body: dict) -> dict:
    """The first object a filter returns; none is an error naming the filter."""
    found = api(api_url, path, {**body, "limit": 1})
    if not found:
        raise RuntimeError(f"nothing at {path} for {body}")
    return found[0]


def artifact_page(api_url: str, key: str) -> str:
    return f"/artifacts/artifact/{first(api_url, '/artifacts/filter', {'artifacts': {'key': {'any_': [key]}}})['id']}"


def quote_task_runs(api_url: str, quote_run: str) -> tuple[dict, dict]:
    """The lesson's `describe` task runs: one handed the future (an upstream edge recorded), one handed `quote`."""
    body = {
        "flow_runs": {"id": {"any_": [quote_run]}},
        "task_runs": {"name": {"like_": "describe"}},
        "sort": "EXPECTED_START_TIME_ASC",
    }
    described = api(api_url, "/task_runs/filter", body)
    resolved = [run for run in described if run["task_inputs"].get("value")]
    quoted = [run for run in described if not run["task_inputs"].get("value")]
    if not resolved or not quoted:
        raise RuntimeError(f"lesson-quote: expected describe runs with and without an input edge, got {described}")
    return resolved[0], quoted[0]


def populate(api_url: str, workdir: Path) -> list[Page]:
    """Deploy a copy of the project as `make deploy` does (whatever the runs write, `perf-report`'s charts too, lands
    in the copy, not in your checkout), run the deployments the pages show with a process worker as `make worker`
    does (`lesson-caching` twice), and return the pages to capture."""
    (workdir / "tmp").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(workdir / "client-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TAXI_LESSONS_ROOT": str(workdir / "lessons"),  # settings.lesson_output_root: never the project's output/
        "TMPDIR": str(workdir / "tmp"),  # a lesson's temporary copies go with the server's folder
    }
    copy = project_copy(workdir / "project")
    env["PWD"] = str(copy)
    deployed = deploy(copy, env)
    if deployed.returncode != 0:
        raise RuntimeError(f"python -m servers deploy failed:\n{deployed.stdout[-2000:]}{deployed.stderr[-2000:]}")
    out = workdir / "out"
    runs = {name: trigger(name, params, copy, env) for name, params in screenshot_runs(out).items()}
    start_worker(api_url, env)
    failed = {name: state for name, state in final_states(api_url, runs).items() if state["type"] != "COMPLETED"}
    if failed:
        raise RuntimeError(f"runs that did not complete: {failed}")
    return pages(api_url, runs, rerun_caching(api_url, out, copy, env))


def pages(api_url: str, runs: dict[str, str], caching_rerun: str) -> list[Page]:
    """The pages to capture, from the runs of `screenshot_runs` (deployment -> flow run id) and the cached rerun."""
    first_month = f"month-yellow-{settings.SAMPLE_MONTHS[0]}"
    months_run = f"/runs/flow-run/{runs['taxi_etl/etl-sample']}"
    resolved, quoted = quote_task_runs(api_url, runs["lesson-quote/lesson-quote"])
    dask_months = {"flow_runs": {"parent_flow_run_id": {"any_": [runs["lesson-dask/lesson-dask"]]}}}
    dask_run = first(api_url, "/flow_runs/filter", dask_months)  # the lesson's `lesson-dask-months` subflow
    return [
        Page("flow-run.png", months_run, first_month, tab="Task Runs"),
        Page("timeline.png", months_run, first_month, clip_height=500),
        Page("artifact.png", artifact_page(api_url, "taxi-etl-yellow"), "taxi_etl: yellow"),
        Page("deployments.png", "/deployments", "etl-sample"),
        Page("quote-task-inputs.png", f"/runs/task-run/{resolved['id']}", "task_run", "Task inputs", 400),
        Page("quote-task-inputs-quoted.png", f"/runs/task-run/{quoted['id']}", '"value"', "Task inputs", 400),
        Page("caching-rerun.png", f"/runs/flow-run/{caching_rerun}", "Cached", tab="Task Runs"),
        Page("compression-artifact.png", artifact_page(api_url, "lesson-compression"), "parquet (zstd)", None, 520),
        Page("s3-results-artifact.png", artifact_page(api_url, "lesson-s3-results"), "trips (parquet)", None, 440),
        Page("disk-io-artifact.png", artifact_page(api_url, "lesson-disk-io"), "peak_rss_mb", None, 360),
        Page("dask-task-runs.png", f"/runs/flow-run/{dask_run['id']}", "etl-month", tab="Task Runs"),
        Page("monitoring-artifact.png", artifact_page(api_url, "lesson-monitoring"), "peak RSS MiB", None, 480),
    ]


def capture(ui_url: str, pages: list[Page], out_dir: Path) -> dict[str, Path]:
    """Open each page in headless Chromium, wait until its expected text is visible, and save a screenshot."""
    from playwright.sync_api import sync_playwright  # the docs tooling's dependency, not the pipeline's

    browser_path = chromium_path()
    if not browser_path:
        raise RuntimeError("no Chromium found: make system-deps (or set TAXI_CHROMIUM to a Chromium binary)")
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            for page_spec in pages:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(ui_url + page_spec.path)
                if page_spec.tab:
                    page.get_by_text(page_spec.tab, exact=True).first.click(timeout=RENDER_TIMEOUT_MS)
                page.get_by_text(page_spec.expect).last.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
                page.wait_for_load_state("networkidle")
                saved[page_spec.file] = out_dir / page_spec.file
                clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": page_spec.clip_height}
                page.screenshot(path=saved[page_spec.file], clip=clip if page_spec.clip_height else None)
                page.close()
        finally:
            browser.close()
    return saved


def take_screenshots(out_dir: Path = IMAGES_DIR) -> dict[str, Path]:
    """The whole procedure: a throwaway server, real runs and a deploy, the screenshots into `out_dir`."""
    with tempfile.TemporaryDirectory(prefix="taxi-ui-") as tmp, throwaway_server(Path(tmp)) as api_url:
        pages = populate(api_url, Path(tmp))
        return capture(api_url.removesuffix("/api"), pages, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ui_screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=IMAGES_DIR, help=f"where to save the PNGs (default {IMAGES_DIR})")
    args = parser.parse_args(argv)
    for name, path in take_screenshots(args.out).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
