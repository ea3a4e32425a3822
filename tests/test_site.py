"""The course site as a reader sees it: every lesson page, opened in Chromium, shows its chart and its Prefect UI
screenshot, and fits the page.

The site is built as `make docs` builds it (`mkdocs build --strict`) into a temporary folder and served on a free
loopback port; Debian's Chromium opens each lesson page (and the benchmark page, the widest table, and the pipeline
page, its diagram) through Playwright at a laptop's and a tablet's width, and measures it: the chart and the UI
screenshot decoded, no table, code block or image wider than its box or past the content column's right edge,
nothing logged as an error in the console. A screenshot of each page is saved beside the build, to look at.

The build's own text is checked too (docstring lists are lists, no "Course page:" pointer on a page), and the
helpers behind it run in milliseconds on small inputs. Alone, the file takes about 50 s on 2 idle cores, most of
it the build (`course_site`, built once with tests/test_docs.py); the browser's part, about 20 s.
"""

from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tools import ui_screenshots

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LESSON_PAGES = sorted(f"lessons/{page.stem}" for page in (PROJECT_ROOT / "docs" / "lessons").glob("*.md"))
LESSON_PAGES.remove("lessons/index")
CHARTED_PAGES = [*LESSON_PAGES, "monitoring"]  # monitoring.md holds lesson 7
VISITED_PAGES = [*CHARTED_PAGES, "benchmark", "pipeline"]
VIEWPORTS = {"laptop": {"width": 1280, "height": 900}, "tablet": {"width": 900, "height": 1100}}
BROWSER_TIMEOUT_MS = 15_000


def load_docs_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"test_docs_{name}", PROJECT_ROOT / "docs" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built_site(course_site) -> Path:
    """The site as `make docs` builds it (`course_site` in tests/conftest.py, shared with tests/test_docs.py)."""
    return course_site


@pytest.fixture(scope="module")
def site_url(built_site) -> Iterator[str]:
    """The built site over HTTP on a free loopback port (a thread of this process, shut down after the module)."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=built_site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# What the browser measures on a page: every table, its scroll wrapper, every code block and every image, against
# its own box and against the content column's right edge; and the lesson chart's, UI screenshots' and diagram's
# images.
MEASURE = """() => {
  const content = document.querySelector('.md-content').getBoundingClientRect();
  const boxes = [...document.querySelectorAll(
    '.md-content .md-typeset table, .md-content .md-typeset__scrollwrap, .md-content .md-typeset pre, '
    + '.md-content .md-typeset pre > code, .md-content .md-typeset img')];
  const decoded = selector => [...document.querySelectorAll(selector)].map(
    image => ({src: image.getAttribute('src'), complete: image.complete, width: image.naturalWidth,
               caption: (image.closest('figure')?.querySelector('figcaption')?.textContent || '').trim()}));
  const overflowing = boxes
    .filter(e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > content.right + 1)
    .map(e => `${e.tagName}.${e.className}: scroll ${e.scrollWidth} > client ${e.clientWidth} or right `
              + `${Math.round(e.getBoundingClientRect().right)} > ${Math.round(content.right)}: `
              + e.textContent.trim().slice(0, 60));
  const chart = document.querySelector('.lesson-chart img');
  return {
    boxes: boxes.length,
    overflowing,
    chart: chart ? {src: chart.getAttribute('src'), complete: chart.complete, width: chart.naturalWidth} : null,
    screenshots: decoded('.ui-screenshot img'),
    diagrams: decoded('.pipeline-diagram img'),
  };
}"""


def figure_problems(page_path: str, measured: dict[str, Any]) -> list[str]:
    """What a page lacks of its figures: a lesson page its chart and a captioned UI screenshot, the pipeline page
    its diagram; each image decoded (a broken or missing file has no natural width)."""
    found = []
    chart = measured["chart"]
    if page_path in CHARTED_PAGES and (not chart or not chart["complete"] or chart["width"] == 0):
        found.append(f"no chart image decoded: {chart}")
    wanted = {"screenshots": page_path in CHARTED_PAGES, "diagrams": page_path == "pipeline"}
    for kind, images in ((kind, measured[kind]) for kind, needed in wanted.items() if needed):
        if not images:
            found.append(f"no {kind[:-1]} on the page")
        found += [f"{kind[:-1]} not decoded: {image}" for image in images if not image["width"]]
        found += [f"{kind[:-1]} without a caption: {image['src']}" for image in images if len(image["caption"]) < 40]
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, as `make screenshots` drives it; closed after the module."""
    if not ui_screenshots.chromium_path() or not importlib.util.find_spec("playwright"):
        pytest.skip("no Chromium (make system-deps) or no playwright (make setup)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=ui_screenshots.chromium_path(), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_each_lesson_page_shows_its_chart_and_screenshot_and_nothing_overflows_the_content_column(
    browser, site_url, built_site, viewport
):
    """One tab visits every page; the laptop-width pass saves a full-page screenshot of each beside the build."""
    page = browser.new_page(viewport=VIEWPORTS[viewport])
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    problems: dict[str, list[str]] = {}
    try:
        for page_path in VISITED_PAGES:
            errors.clear()
            page.goto(f"{site_url}/{page_path}/", wait_until="load")
            page.wait_for_function("() => [...document.images].every(image => image.complete)")
            measured = page.evaluate(MEASURE)
            if viewport == "laptop":
                page.screenshot(path=built_site.parent / f"{page_path.replace('/', '-')}.png", full_page=True)
            found = [*measured["overflowing"], *(f"console: {error}" for error in errors)]
            if not measured["boxes"]:
                found.append("no table or code block measured: the selectors no longer match the theme")
            found += figure_problems(page_path, measured)
            if found:
                problems[page_path] = found
    finally:
        page.close()
    assert not problems, json.dumps(problems, indent=2)


def test_docstring_lists_render_as_lists_and_no_page_shows_a_course_page_pointer(built_site):
    caching = (built_site / "lessons" / "caching" / "index.html").read_text()
    items = re.findall(r"<li>(.*?)</li>", caching, flags=re.DOTALL)
    assert any("fingerprint" in item for item in items) and any("output version" in item for item in items)
    for page in built_site.rglob("index.html"):
        if "/source/" not in page.as_posix():  # a module's own source keeps its docstring as written
            assert "Course page:" not in page.read_text(), page


def test_each_lesson_page_shows_code_cut_from_its_module(built_site):
    """A `source_lines` fence is titled with its module and lines, and holds those lines as they are in the file."""
    for page_path in CHARTED_PAGES:
        document = (built_site / page_path / "index.html").read_text()
        text = re.sub(r"\W", "", html.unescape(re.sub(r"<[^>]+>", "", document)))
        titles = re.findall(r'<span class="filename">((?:flows|tasks)/\w+\.py), lines (\d+)-(\d+)</span>', document)
        assert titles, page_path
        for module_path, first, _last in titles:
            first_line = (PROJECT_ROOT / module_path).read_text().splitlines()[int(first) - 1].strip()
            assert re.sub(r"\W", "", first_line) in text, (page_path, first_line)


def test_the_benchmark_page_says_how_long_the_run_took_from_its_own_record(built_site):
    seconds = json.loads((PROJECT_ROOT / "benchmarks" / "results.json").read_text())["seconds"]
    assert f"took {seconds / 60:.1f} minutes" in (built_site / "benchmark" / "index.html").read_text()


def test_each_lesson_page_shows_a_committed_ui_screenshot_with_a_caption(built_site):
    for page_path in CHARTED_PAGES:
        document = (built_site / page_path / "index.html").read_text()
        figures = re.findall(r'<figure class="ui-screenshot">(.*?)</figure>', document, flags=re.DOTALL)
        assert figures, page_path
        for figure in figures:
            image = re.search(r'src="((?:\.\./)+images/ui/[\w-]+\.png)"', figure)
            assert image and re.search(r"<figcaption>.{40,}</figcaption>", figure, flags=re.DOTALL), figure
            assert (built_site / page_path / image.group(1)).resolve().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_pipeline_page_shows_one_month_as_an_svg_drawn_by_code_with_the_commit_order(built_site):
    document = (built_site / "pipeline" / "index.html").read_text()
    figure = re.search(r'<figure class="pipeline-diagram">(.*?)</figure>', document, flags=re.DOTALL)
    assert figure and 'src="../assets/pipeline-month.svg"' in figure.group(1) and "<figcaption>" in figure.group(1)
    svg = (built_site / "assets" / "pipeline-month.svg").read_text()
    texts = [html.unescape(text) for text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    steps = [text for text in texts if text in {"extract", "check", "validate", "transform", "load"}]
    assert steps == ["extract", "check", "validate", "transform", "load"]
    assert {"quarantine", "trips", "quarantine_version = q"} <= set(texts)
    assert texts.index("1  commit quarantine") < texts.index("2  then commit trips,")
    assert not re.search(r"""(?:href|src)=["']https?:""", svg), "the site is built offline: nothing to fetch"


# --- The helpers, in milliseconds -----------------------------------------------------------------------------------


def test_a_list_right_under_a_paragraph_line_gets_its_blank_lines_and_a_wrapped_code_span_stays_text():
    docstrings = load_docs_module("course_docstrings")
    written = 'The key covers (`INPUTS\n- "zones"`):\n- a fingerprint;\n  read cheaply\n- the version.\nThe rest.'
    assert docstrings.spaced_lists(written) == (
        'The key covers (`INPUTS\n- "zones"`):\n\n- a fingerprint;\n  read cheaply\n- the version.\n\nThe rest.'
    )
    pointer = "Run it.\n\nCourse page: `docs/lessons/quote.md` (`make docs` builds the site)."
    assert docstrings.for_readers(pointer) == "Run it."
    assert docstrings.for_readers("Lesson.\n\nWhat it does. It works.", lesson=True) == (
        "Lesson.\n\n**What it does.** It works."
    )


def test_source_lines_cuts_a_definition_with_its_decorators_and_comment_and_refuses_a_missing_name(tmp_path):
    snippets = load_docs_module("snippets")
    (tmp_path / "lesson.py").write_text(
        "import x\n\n\n# why it is cached\n@task(\n    cache_policy=NO_CACHE,\n)\ndef step(a):\n    return a\n"
    )
    fence = snippets.source_lines(tmp_path, "lesson.py", "def step")
    assert fence.splitlines()[0] == '```python title="lesson.py, lines 4-9"'
    assert fence.splitlines()[1:-1] == [
        "# why it is cached",
        "@task(",
        "    cache_policy=NO_CACHE,",
        ")",
        "def step(a):",
        "    return a",
    ]
    with pytest.raises(LookupError, match="0 definitions named 'gone'"):
        snippets.source_lines(tmp_path, "lesson.py", "gone")


def test_a_page_asking_for_code_that_is_not_in_the_module_fails_the_build():
    from mkdocs.exceptions import PluginError

    hooks = load_docs_module("hooks")
    assert "def quote_lesson(" in hooks.expand_macros('{{ source_lines("flows/quote.py", "quote_lesson") }}', "p.md")
    with pytest.raises(PluginError, match=r"flows/quote\.py: 0 definitions named 'flow_without_quote'"):
        hooks.expand_macros('{{ source_lines("flows/quote.py", "def flow_without_quote") }}', "page.md")


def test_a_chart_is_drawn_for_each_charted_page_and_a_lesson_without_rows_is_an_error(built_site):
    charts = load_docs_module("lesson_charts")
    for page_path in CHARTED_PAGES:
        chart = re.search(
            r'src="((?:\.\./)+assets/lessons/\w+\.png)"', (built_site / page_path / "index.html").read_text()
        )
        assert chart, page_path
        assert (built_site / page_path / chart.group(1)).resolve().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert charts.sides("flow seconds over 3 months: cold run vs cached rerun") == ("cold run", "cached rerun")
    # a note after a variant is left off its bar's label, a short parenthesis that names the variant is not
    long_note = "seconds: plain (a cost: lower) vs quiet rerun (without the wait for the thread's 1 s sleep, `x`)"
    assert charts.sides(long_note) == ("plain", "quiet rerun")
    assert charts.sides("seconds: compressed/pickle (lzma) vs parquet (zstd)") == (
        "compressed/pickle (lzma)",
        "parquet (zstd)",
    )
    with pytest.raises(ValueError, match=r"no row for flows/nothing\.py"):
        charts.draw([], "flows/nothing.py")


def test_a_lesson_page_without_its_screenshot_or_chart_is_reported_and_a_missing_screenshot_fails_the_build():
    from mkdocs.exceptions import PluginError

    decoded = {
        "src": "x.png",
        "complete": True,
        "width": 1400,
        "caption": "what to look at, in forty characters or more",
    }
    whole = {"chart": decoded, "screenshots": [decoded], "diagrams": []}
    assert figure_problems("lessons/quote", whole) == []
    assert figure_problems("lessons/quote", {**whole, "screenshots": []}) == ["no screenshot on the page"]
    assert figure_problems("pipeline", whole) == ["no diagram on the page"]
    uncaptioned = {**whole, "screenshots": [{**decoded, "caption": ""}]}
    assert figure_problems("lessons/quote", uncaptioned) == ["screenshot without a caption: x.png"]
    figures = load_docs_module("ui_figures")
    assert "images/ui/flow-run.png" in figures.ui_screenshot("flow-run.png", "The month task runs.")
    with pytest.raises(PluginError, match=r"docs/images/ui/gone\.png is missing"):
        figures.ui_screenshot("gone.png", "A caption.")


def test_every_text_of_every_lesson_chart_fits_inside_its_image():
    """A long title ("monitoring_overhead: ..., target with metrics <= 1.03x without: met") is not cut at the edge."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    charts = load_docs_module("lesson_charts")
    results = json.loads((PROJECT_ROOT / "benchmarks" / "results.json").read_text())["results"]
    for lesson in sorted({result["lesson"] for result in results}):
        figure = charts.chart(results, lesson)
        figure.canvas.draw()  # texts are placed when drawn
        renderer = figure.canvas.get_renderer()
        ticks = {id(label) for axis in figure.axes for label in [*axis.get_xticklabels(), *axis.get_yticklabels()]}
        for text in figure.findobj(Text):  # titles, bar values; tick labels past an axis's end are not drawn
            if text.get_text() and id(text) not in ticks:
                extent = text.get_window_extent(renderer)
                assert extent.x0 >= 0 and extent.x1 <= figure.bbox.width, (lesson, text.get_text(), extent)
        plt.close(figure)
