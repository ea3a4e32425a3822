"""Every module a user runs with `python -m` answers `--help` with its usage and runs nothing.

Each such module keeps its work in `main(argv)` behind an argparse parser, and its `__main__` guard only calls
`main()`: so `main(["--help"])` here is what `python -m <module> --help` does, and the parser exits before any
flow, server or benchmark starts (a lesson that ran on `--help` would take seconds here and print its results).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "blocks", "benchmarks", "data", "servers", "tools")


def runnable_modules() -> list[str]:
    """Modules with an `if __name__ == "__main__":` block, as `python -m` names them."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if '__name__ == "__main__"' in path.read_text():
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_the_runnable_modules_are_found():
    assert {"flows.etl", "flows.quote", "servers.__main__", "data.generate"} <= set(runnable_modules())


@pytest.mark.parametrize("module", runnable_modules())
def test_main_guard_only_calls_main(module):
    tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
    guard = next(node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))
    assert ast.unparse(guard.body[0]) in ("main()", "sys.exit(main())") and len(guard.body) == 1, module


@pytest.mark.parametrize("module", runnable_modules())
def test_help_prints_usage_and_runs_nothing(module, capsys):
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {module.removesuffix('.__main__')}")
