"""Build-time hooks for the course site (mkdocs.yml `hooks:`): every figure on a page comes from the project itself.

A page asks for generated content with a macro, `{{ name(arguments) }}`, which this hook replaces before Markdown
is rendered: the rule table from `tasks/rules.py`, the canonical schema from `tasks/schema.py`, benchmark rows from
`benchmarks/results.json`, values from `tasks/settings.py`. An unknown macro, a benchmark row that does not exist or
a missing generated file fails the build, so a page cannot quietly keep a stale or hand-typed number.

Each lesson page shows its measured effect as a chart (`lesson_chart`, drawn here from `benchmarks/results.json` by
`docs/lesson_charts.py`) and the lines of code that matter, cut from the module by name (`source_lines`): a renamed
function fails the build instead of leaving a stale copy on the page.

The hook also publishes, without copying anything into docs/: the charts the project draws (under `assets/`),
every module of `flows/`, `tasks/` and `blocks/` as a page of source (under `source/`), so a lesson page links the
code it teaches, and the API reference (`api.md`): a section per module of `tasks/`, so a new module is in it
without anyone adding it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
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
RESULTS_JSON = PROJECT_ROOT / "benchmarks" / "results.json"
SOURCE_PACKAGES = ("flows", "tasks", "blocks")

# Site path -> the project file it is published from (both drawn by the project: `make bench`, `make mart`).
FIGURES = {
    "assets/benchmark-results.png": PROJECT_ROOT / "benchmarks" / "results.png",
    "assets/mart-daily-trips-by-borough.png": PROJECT_ROOT / "reports" / "mart" / "daily-trips-by-borough.png",
    "assets/perf-gantt-latest.png": PROJECT_ROOT / "reports" / "perf" / "gantt-latest.png",
    "assets/perf-trend.png": PROJECT_ROOT / "reports" / "perf" / "trend.png",
}

# Site path of a lesson module's chart: `flows/quote.py` -> `assets/lessons/quote.png`.
LESSON_CHART = "assets/lessons/{stem}.png"

MACRO = re.compile(r"\{\{\s*([a-z_]+)\((.*?)\)\s*\}\}")


def sibling(name: str) -> ModuleType:
    """A helper module beside this file (MkDocs loads hooks by path: docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise PluginError(f"docs/{name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    charts, results = sibling("lesson_charts"), benchmark_document()["results"]
    for lesson in charted_lessons(Path(config.docs_dir)):
        chart = LESSON_CHART.format(stem=Path(lesson).stem)
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
    from tasks.rules import RULES

    return markdown_table(
        ["order", "reason", "a row is quarantined when"],
        [[number, f"`{rule.reason}`", rule.description] for number, rule in enumerate(RULES, start=1)],
    )


def duration_note() -> str:
    """How durations are measured across daylight-saving changes (`tasks.rules.DURATION_ON_INSTANTS`)."""
    from tasks.rules import DURATION_ON_INSTANTS

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


def benchmark_document() -> dict[str, Any]:
    return json.loads(RESULTS_JSON.read_text())


def benchmark_machine() -> str:
    """Where and how the committed results were measured."""
    document = benchmark_document()
    machine = document["machine"]
    size = "tiny months (`--quick`): the figures mean little" if document["quick"] else "generated months"
    return (
        f"Measured by `make bench` on {machine['cores']} cores and {machine['memory_gb']} GB, Python "
        f"{machine['python']}, prefect {machine['prefect']}, on {size} of {document['rows_per_month']:,} rows; "
        f"each figure is the median of {document['repeats']} repeats, (min-max) their range."
    )


def with_unit(result: dict[str, Any], side: str) -> str:
    """`7.312 s (7.102-9.111)`: a side's median with its unit, then the range of its repeats."""
    from benchmarks.report import figure

    return f"{figure(result[side])} {result['unit']} ({figure(result['min'][side])}-{figure(result['max'][side])})"


def benchmark_rows(*names_or_lessons: str) -> str:
    """Benchmark rows chosen by name or by lesson module (`flows/quote.py`), as a table with their targets."""
    from benchmarks.report import MET

    results = benchmark_document()["results"]
    chosen = [result for result in results if {result["name"], result["lesson"]} & set(names_or_lessons)]
    found = {result["name"] for result in chosen} | {result["lesson"] for result in chosen}
    if missing := [wanted for wanted in names_or_lessons if wanted not in found]:
        raise PluginError(f"benchmarks/results.json has no row for {missing}")
    return markdown_table(
        ["result", "what is compared", "baseline", "optimized", "ratio", "target", "met"],
        [
            [
                f"`{result['name']}`",
                result["metric"],
                with_unit(result, "baseline"),
                with_unit(result, "optimized"),
                f"{result['ratio']:.2f}x",
                result["target"] or "-",
                MET[result["met"]],
            ]
            for result in chosen
        ],
    )


def benchmark_duration() -> str:
    """How long the committed `make bench` run took, as it recorded it (`seconds` in results.json)."""
    document = benchmark_document()
    if not document.get("seconds"):
        raise PluginError("benchmarks/results.json records no duration (`seconds`): rerun `make bench`")
    return f"{document['seconds'] / 60:.1f} minutes"


def lesson_chart(lesson: str) -> str:
    """A lesson module's chart (drawn in `on_files`), with a caption that says how to read it."""
    rows = [result for result in benchmark_document()["results"] if result["lesson"] == lesson]
    if not rows:
        raise PluginError(f"benchmarks/results.json has no row for {lesson}")
    names = ", ".join(f"<code>{result['name']}</code>" for result in rows)
    chart = f"../{LESSON_CHART.format(stem=Path(lesson).stem)}"
    return (
        '<figure class="lesson-chart" markdown="span">\n'
        f"  ![The measured effect of {lesson}, baseline against optimized]({chart})\n"
        f"  <figcaption>{names}: the baseline (light bar, on top) against the optimized variant, the median of the "
        "repeats with whiskers from the fastest to the slowest. Green met its target, red missed it, grey has none. "
        "Drawn from <code>benchmarks/results.json</code> when the site is built.</figcaption>\n"
        "</figure>"
    )


def source_lines(module_path: str, name: str) -> str:
    """The definition `name` (`"def cached_etl"` or `"cached_etl"`), cut from the module as it is when the site is
    built (`docs/snippets.py`); a missing or ambiguous name fails the build."""
    try:
        return sibling("snippets").source_lines(PROJECT_ROOT, module_path, name)
    except LookupError as error:
        raise PluginError(str(error)) from error


def benchmark_ratio(name: str) -> str:
    """One row's ratio (median baseline / median optimized), for a sentence."""
    for result in benchmark_document()["results"]:
        if result["name"] == name:
            return f"{result['ratio']:.2f}x"
    raise PluginError(f"benchmarks/results.json has no row {name!r}")


def benchmark_details(name: str) -> str:
    """The detail table a row carries (per serializer, per step, per engine)."""
    from benchmarks.report import details_table

    for result in benchmark_document()["results"]:
        if result["name"] == name:
            if not result["details"]:
                raise PluginError(f"benchmark row {name!r} has no details")
            return "\n".join(details_table(result["details"]))
    raise PluginError(f"benchmarks/results.json has no row {name!r}")


def benchmark_all() -> str:
    """Every row of the committed results."""
    return benchmark_rows(*(result["name"] for result in benchmark_document()["results"]))


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
        benchmark_machine,
        benchmark_duration,
        benchmark_rows,
        benchmark_ratio,
        benchmark_details,
        benchmark_all,
        module_docstring,
        lesson_chart,
        source_lines,
    )
}


def expand_macros(markdown: str, where: str) -> str:
    def expand(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2).strip()
        if name not in MACROS:
            raise PluginError(f"{where}: unknown macro {name!r} (known: {', '.join(MACROS)})")
        values = ast.literal_eval(f"({arguments},)") if arguments else ()
        return MACROS[name](*values)

    return MACRO.sub(expand, markdown)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri.startswith("source/"):
        return markdown  # code as it is: a `{{ ... }}` in a module is its own text, not a macro
    return expand_macros(markdown, page.file.src_uri)
