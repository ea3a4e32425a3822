"""Screenshots of the Prefect UI for the course site, taken from a real run by headless Chromium.

`make screenshots` (or `python -m tools.ui_screenshots`) starts a throwaway `prefect server` on a free loopback
port (its own home and process records in a temporary folder: a server you started with `make server` is left
alone), runs `taxi_etl` on the yellow sample against it, deploys `prefect.yaml` to it the way `make deploy` does,
then opens four pages in Debian's Chromium through Playwright and saves them under `docs/images/ui/`:

- `flow-run.png`: the `taxi_etl` run, one task run per month;
- `timeline.png`: the same run's graph, where the months run side by side;
- `artifact.png`: the run summary artifact `taxi-etl-yellow`;
- `deployments.png`: the deployments `make deploy` created.

Each page is captured only once it shows what it is taken for (a month's task run name, the artifact's title, a
deployment's name): a page that never renders it fails the command instead of saving an empty screenshot. The
test (`tests/test_ui_screenshots.py`) runs the same capture into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import servers
from tasks import settings

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


def api(api_url: str, path: str, body: dict) -> list[dict]:
    url = f"{api_url}{path}"
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: only the throwaway loopback server is queried")
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)  # noqa: S310 (checked)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback checked above)
        return json.loads(response.read())


def populate(api_url: str, workdir: Path) -> list[Page]:
    """Run the sample ETL and deploy the project against the server; returns the pages to capture."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(workdir / "client-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for argv in (
        [sys.executable, "-m", "flows.etl", "--service", "yellow", "--output", str(workdir / "lake")],
        [sys.executable, "-m", "servers", "deploy"],
    ):
        done = subprocess.run(argv, cwd=settings.PROJECT_ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    months_run = api(api_url, "/flow_runs/filter", {"flows": {"name": {"any_": ["taxi_etl"]}}, "limit": 1})[0]
    artifact = api(api_url, "/artifacts/filter", {"artifacts": {"key": {"any_": ["taxi-etl-yellow"]}}, "limit": 1})[0]
    first_month = f"month-yellow-{settings.SAMPLE_MONTHS[0]}"
    return [
        Page("flow-run.png", f"/runs/flow-run/{months_run['id']}", first_month, tab="Task Runs"),
        Page("timeline.png", f"/runs/flow-run/{months_run['id']}", first_month, clip_height=500),
        Page("artifact.png", f"/artifacts/artifact/{artifact['id']}", "taxi_etl: yellow"),
        Page("deployments.png", "/deployments", "etl-sample"),
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
    """The whole procedure: a throwaway server, a real run and deploy, four screenshots into `out_dir`."""
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
