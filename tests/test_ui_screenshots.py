"""The course site's Prefect UI screenshots are taken from a real server, run and deploy (`make screenshots`).

One test does the whole procedure into a temporary folder: a page that does not render what it is taken for (a
month's task run, the summary artifact, a deployment, a lesson's `Cached` task runs or its artifact) fails the
capture, so a broken UI URL, a renamed task run or an empty page fails here instead of shipping as a blank image.
It runs the sample ETL and every lesson against a throwaway server: several minutes on 2 cores.
"""

from __future__ import annotations

import importlib.util

import pytest

from tools import ui_screenshots

pytestmark = [
    pytest.mark.skipif(not ui_screenshots.chromium_path(), reason="no Chromium: make system-deps"),
    pytest.mark.skipif(not importlib.util.find_spec("playwright"), reason="playwright is not installed (make setup)"),
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCREENSHOTS = sorted(
    [
        *["artifact.png", "deployments.png", "flow-run.png", "timeline.png"],  # taxi_etl and the deployments
        *["quote-task-inputs.png", "quote-task-inputs-quoted.png", "caching-rerun.png", "compression-artifact.png"],
        *["s3-results-artifact.png", "disk-io-artifact.png", "dask-task-runs.png", "monitoring-artifact.png"],
    ]
)


def test_every_screenshot_shows_what_it_is_taken_for(tmp_path):
    saved = ui_screenshots.take_screenshots(tmp_path / "ui")
    assert sorted(saved) == SCREENSHOTS
    for path in saved.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000, path


def test_the_committed_screenshots_are_the_ones_the_command_writes():
    committed = sorted(path.name for path in ui_screenshots.IMAGES_DIR.glob("*.png"))
    assert committed == SCREENSHOTS
