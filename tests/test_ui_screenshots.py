"""The course site's Prefect UI screenshots are taken from a real server, run and deploy (`make screenshots`).

One test does the whole procedure into a temporary folder: a page that does not render what it is taken for (a
month's task run, the summary artifact, a deployment) fails the capture, so a broken UI URL, a renamed task run or
an empty page fails here instead of shipping as a blank image.
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


def test_every_screenshot_shows_what_it_is_taken_for(tmp_path):
    saved = ui_screenshots.take_screenshots(tmp_path / "ui")
    assert sorted(saved) == ["artifact.png", "deployments.png", "flow-run.png", "timeline.png"]
    for path in saved.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000, path


def test_the_committed_screenshots_are_the_ones_the_command_writes():
    committed = sorted(path.name for path in ui_screenshots.IMAGES_DIR.glob("*.png"))
    assert committed == ["artifact.png", "deployments.png", "flow-run.png", "timeline.png"]
