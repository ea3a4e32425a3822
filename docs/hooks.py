"""Build-time hooks for the course site (mkdocs.yml `hooks:`): every figure on a page comes from the project itself.

A page asks for generated content with a macro, `{{ name(arguments) }}`, which this hook replaces before Markdown
is rendered: the rule table from `tasks/pipeline/rules.py`, the canonical schema from `tasks/schema.py`, benchmark
rows from
`benchmarks/results.json` (`docs/benchmark_macros.py`), values from `tasks/settings.py`. An unknown macro, a
benchmark row that does not exist or a missing generated file fails the build, so a page cannot quietly keep a
stale or hand-typed number.

Each lesson page shows its measured effect as a chart (`lesson_chart`, drawn at build time from
`benchmarks/results.json` by `docs/lesson_charts.py`) and the lines of code that matter, cut from the module by name
(`source_lines`, `docs/snippets.py`): a renamed function fails the build instead of leaving a stale copy on the page.
It also shows what the lesson changes in Prefect's UI, a committed screenshot with a caption (`ui_screenshot`,
`docs/ui_figures.py`; `make screenshots` takes them), and the pipeline page its diagram of one month, drawn as SVG
(`docs/pipeline_diagram.py`).
Docstrings are shown as code readers wrote them, through `docs/course_docstrings.py` (a Griffe extension): lists
spaced so they render as lists, "Course page:" pointers dropped. The helpers beside this file are loaded by path.

The hook also publishes, without copying anything into docs/: the charts the project draws (under `assets/`),
every module of `flows/`, `tasks/` and `blocks/` as a page of source (under `source/`), so a lesson page links the
code it teaches, and the API reference (`api.md`): a section per module of `tasks/`, so a new module is in it
without anyone adding it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SOURCE_PACKAGES = ("flows", "tasks", "blocks")

# Site path -> the project file it is published from (both drawn by the project: `make bench`, `make mart`).
FIGURES = {
    "assets/benchmark-results.png": PROJECT_ROOT / "benchmarks" / "results.png",
    "assets/mart-daily-trips-by-borough.png": PROJECT_ROOT / "reports" / "mart" / "daily-trips-by-borough.png",
    "assets/perf-gantt-latest.png": PROJECT_ROOT / "reports" / "perf" / "gantt-latest.png",
    "assets/perf-trend.png": PROJECT_ROOT / "reports" / "perf" / "trend.png",
}

MACRO = re.compile(r"\{\{\s*([a-z_]+)\((.*?)\)\s*\}\}")


def sibling(name: str) -> ModuleType:
    """A helper module beside this file (MkDocs loads hooks by path: docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise PluginError(f"docs/{name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench, figures = sibling("benchmark_macros"), sibling("ui_figures")
PIPELINE_DIAGRAM = "assets/pipeline-month.svg"  # drawn by docs/pipeline_diagram.py, shown on pipeline.md


def source_page_uri(module_path: str) -> str:
    """`flows/quote.py` -> `source/flows/quote.md`: where the hook publishes a module's source."""
    return f"source/{module_path.removesuffix('.py')}.md"


def source_page(module_path: str) -> str:
    """A module's full source in a fence longer than any backtick run it holds."""
    text = (PROJECT_ROOT / module_path).read_text()
    longest_run = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest_run + 1)
    return f"# `{module_path}`\n\n{fence}python\n{text}{fence}\n"


def api_reference() -> str:
    """Every module of `tasks/`, its docstrings and signatures rendered by mkdocstrings, and a link to its source."""
    sections = [
        "# API reference",
        "",
        "The data logic, module by module, rendered from the code's own docstrings and signatures.",
    ]
    for module in sorted((PROJECT_ROOT / "tasks").rglob("*.py")):
        module_path = module.relative_to(PROJECT_ROOT).as_posix()
        name = ".".join(module.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        sections += [
            "",
            f"## `{name}`",
            "",
            f"[source: `{module_path}`]({source_page_uri(module_path)})",
            "",
            f"::: {name}",
            "    options:",
            "      members: null",  # every member, through the filters below (true would skip them)
            "      filters: public",  # what the module defines for others: no private helpers, no imported names
            "      heading_level: 3",
            "      show_signature_annotations: true",
            "      separate_signature: true",
        ]
    return "\n".join(sections) + "\n"


def charted_lessons(docs_dir: Path) -> list[str]:
    """The lesson modules whose chart a page asks for (`{{ lesson_chart("flows/quote.py") }}`): only those are drawn."""
    asked = (match for page in docs_dir.rglob("*.md") for match in MACRO.finditer(page.read_text()))
    return sorted({ast.literal_eval(match.group(2)) for match in asked if match.group(1) == "lesson_chart"})


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "api.md", content=api_reference()))
    for site_path, project_file in FIGURES.items():
        if not project_file.exists():
            missing = project_file.relative_to(PROJECT_ROOT)
            raise PluginError(f"{missing} is missing: the site shows it (see FIGURES in docs/hooks.py)")
        files.append(File.generated(config, site_path, abs_src_path=str(project_file)))
    files.append(File.generated(config, PIPELINE_DIAGRAM, content=sibling("pipeline_diagram").draw()))
    charts, results = sibling("lesson_charts"), bench.benchmark_document()["results"]
    for lesson in charted_lessons(Path(config.docs_dir)):
        chart = bench.LESSON_CHART.format(stem=Path(lesson).stem)
        files.append(File.generated(config, chart, content=charts.draw(results, lesson)))
    for package in SOURCE_PACKAGES:
        for module in sorted((PROJECT_ROOT / package).rglob("*.py")):
            module_path = module.relative_to(PROJECT_ROOT).as_posix()
            files.append(File.generated(config, source_page_uri(module_path), content=source_page(module_path)))
    return files


# --- Macros: each returns Markdown ---------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def rules_table() -> str:
    """The validation rules in the order they are checked, with the reason code a quarantined row carries."""
    from tasks.pipeline.rules import RULES

    return markdown_table(
        ["order", "reason", "a row is quarantined when"],
        [[number, f"`{rule.reason}`", rule.description] for number, rule in enumerate(RULES, start=1)],
    )


def duration_note() -> str:
    """How durations are measured across daylight-saving changes (`tasks.pipeline.rules.DURATION_ON_INSTANTS`)."""
    from tasks.pipeline.rules import DURATION_ON_INSTANTS

    return DURATION_ON_INSTANTS.strip()


def schema_table() -> str:
    """The canonical schema every file is normalized onto, with the source names read as each column."""
    from tasks.schema import ALIASES, CANONICAL_SCHEMA, REQUIRED_COLUMNS

    aliases: dict[str, list[str]] = {}
    for source_name, canonical in ALIASES.items():
        aliases.setdefault(canonical, []).append(f"`{source_name}`")
    return markdown_table(
        ["column", "type", "required", "also read from"],
        [
            [
                f"`{field.name}`",
                f"`{field.type}`",
                "yes" if field.name in REQUIRED_COLUMNS else "",
                ", ".join(aliases.get(field.name, [])),
            ]
            for field in CANONICAL_SCHEMA
        ],
    )


def derived_table() -> str:
    """The columns `transform` adds to clean rows."""
    from tasks.schema import DERIVED_FIELDS

    return markdown_table(["column", "type"], [[f"`{field.name}`", f"`{field.type}`"] for field in DERIVED_FIELDS])


def setting(name: str) -> str:
    """A value from `tasks/settings.py`, as the code has it."""
    from tasks import settings

    if not hasattr(settings, name):
        raise PluginError(f"tasks.settings has no {name}")
    return f"{getattr(settings, name)}"


def source_lines(module_path: str, name: str) -> str:
    """The definition `name` (`"def cached_etl"` or `"cached_etl"`), cut from the module as it is when the site is
    built (`docs/snippets.py`); a missing or ambiguous name fails the build."""
    try:
        return sibling("snippets").source_lines(PROJECT_ROOT, module_path, name)
    except LookupError as error:
        raise PluginError(str(error)) from error


def module_docstring(module_path: str) -> str:
    """A module's docstring as Markdown: the narrative it teaches (for modules outside mkdocstrings' reach)."""
    docstring = ast.get_docstring(ast.parse((PROJECT_ROOT / module_path).read_text()))
    if not docstring:
        raise PluginError(f"{module_path} has no module docstring")
    return docstring


MACROS: dict[str, Callable[..., str]] = {
    function.__name__: function
    for function in (
        rules_table,
        duration_note,
        schema_table,
        derived_table,
        setting,
        bench.benchmark_machine,
        bench.benchmark_duration,
        bench.benchmark_rows,
        bench.benchmark_ratio,
        bench.benchmark_details,
        bench.benchmark_all,
        module_docstring,
        bench.lesson_chart,
        source_lines,
        figures.ui_screenshot,
    )
}


def expand_macros(markdown: str, where: str) -> str:
    def expand(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2).strip()
        if name not in MACROS:
            raise PluginError(f"{where}: unknown macro {name!r} (known: {', '.join(MACROS)})")
        values = ast.literal_eval(f"({arguments},)") if arguments else ()
        return MACROS[name](*values)

    return MACRO.sub(expand, markdown).replace(bench.SITE_ROOT, "../" * where.count("/"))


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri.startswith("source/"):
        return markdown  # code as it is: a `{{ ... }}` in a module is its own text, not a macro
    return expand_macros(markdown, page.file.src_uri)
