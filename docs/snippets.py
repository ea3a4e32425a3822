"""The lines of code a lesson page shows, cut from the module by name when the site is built, so they cannot drift.

`source_lines(root, "flows/caching.py", "run_month_cached")` finds the one function, class or assignment of that
name with Python's own parser (not a text search: a name in a comment or a string does not count), and returns it
with its decorators and the comment lines right above it, in a fence titled with the file and line numbers. No
marker comments in the code are needed; a renamed or duplicated name is an error, which fails the build.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path


def defines(node: ast.AST, name: str) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    return isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name


def definition_lines(source: str, name: str) -> tuple[int, int]:
    """First and last line (1-based) of the one definition of `name`, its decorators and comments above included."""
    found = [node for node in ast.walk(ast.parse(source)) if defines(node, name)]
    if len(found) != 1:
        raise LookupError(f"{len(found)} definitions named {name!r} (a page shows exactly one)")
    node = found[0]
    first = min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", []))])
    lines = source.splitlines()
    while first > 1 and lines[first - 2].strip().startswith("#"):
        first -= 1
    return first, node.end_lineno or node.lineno


def source_lines(root: Path, module_path: str, name: str) -> str:
    """The definition `name` (`"def cached_etl"`, `"class X"` or just the name) as a titled Markdown fence."""
    source = (root / module_path).read_text()
    try:
        first, last = definition_lines(source, name.removeprefix("def ").removeprefix("class ").strip())
    except LookupError as error:
        raise LookupError(f"{module_path}: {error}") from error
    code = textwrap.dedent("\n".join(source.splitlines()[first - 1 : last]))
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", code)), default=0) + 1)
    return f'{fence}python title="{module_path}, lines {first}-{last}"\n{code}\n{fence}'
