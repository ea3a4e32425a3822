"""A Prefect UI screenshot on a course page, as a figure with a caption that says what to look at.

The screenshots are taken by `make screenshots` (`tools/ui_screenshots.py`) from a real server and real runs, and
committed under `docs/images/ui/`; a page asks for one by file name (`{{ ui_screenshot("caching-rerun.png",
"...") }}`), and a file that is not there fails the build instead of leaving a broken image on the page.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.exceptions import PluginError

UI_IMAGES = Path(__file__).resolve().parent / "images" / "ui"


def ui_screenshot(file: str, caption: str, site_root: str = "{site_root}/") -> str:
    """The screenshot `file` as a `<figure class="ui-screenshot">`; `caption` is Markdown (code spans, emphasis)."""
    if not (UI_IMAGES / file).is_file():
        raise PluginError(f"docs/images/ui/{file} is missing: `make screenshots` takes it (tools/ui_screenshots.py)")
    alt, image = f"Prefect UI: {Path(file).stem.replace('-', ' ')}", f"{site_root}images/ui/{file}"
    return (  # the image links to itself: a click shows the screenshot at full size
        '<figure class="ui-screenshot" markdown="span">\n'
        f"  [![{alt}]({image})]({image})\n"
        f'  <figcaption markdown="span">{caption}</figcaption>\n'
        "</figure>"
    )
