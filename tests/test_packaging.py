"""Declared dependencies: what the code imports is declared in pyproject.toml, and moto is not a runtime dependency.

A dependency that only arrives through another one (numpy through pandas, boto3 through prefect-aws) works until
that other package drops it; declaring what is imported directly keeps an install from breaking on someone else's
release. moto is the local S3 of the lessons and tests, so it lives in the `local-s3` extra, and the pipeline must
import without it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
PROJECT_NAME = PYPROJECT["project"]["name"]
LOCAL_PACKAGES = {"flows", "tasks", "blocks", "servers", "data", "benchmarks", "tools", "tests", "docs"}
RUNTIME_PACKAGES = ("flows", "tasks", "blocks", "servers", "data", "benchmarks")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*extras: str) -> set[str]:
    """Distributions declared for a runtime install plus `extras`, following extras that name the project itself."""
    names: set[str] = set()
    pending = [*PYPROJECT["project"]["dependencies"]]
    seen_extras: set[str] = set()
    for extra in extras:
        pending += PYPROJECT["project"]["optional-dependencies"][extra]
        seen_extras.add(extra)
    while pending:
        requirement = Requirement(pending.pop())
        if normalized(requirement.name) == normalized(PROJECT_NAME):
            for extra in requirement.extras - seen_extras:
                seen_extras.add(extra)
                pending += PYPROJECT["project"]["optional-dependencies"][extra]
        else:
            names.add(normalized(requirement.name))
    return names


def third_party_imports(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level modules imported anywhere in the folders' Python files (functions too) -> the files importing them."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL_PACKAGES:
                        found.setdefault(top, set()).add(path.relative_to(PROJECT_ROOT).as_posix())
    return found


def undeclared(folders: tuple[str, ...], allowed: set[str]) -> dict[str, set[str]]:
    distributions = packages_distributions()
    return {
        module: files
        for module, files in third_party_imports(folders).items()
        if not {normalized(d) for d in distributions.get(module, [module])} & allowed
    }


def test_the_project_declares_what_it_imports():
    """Each import in the packages is declared for a runtime install or in one of its extras."""
    every_extra = tuple(PYPROJECT["project"]["optional-dependencies"])
    assert undeclared(RUNTIME_PACKAGES, declared(*every_extra)) == {}


def test_the_tests_and_the_site_need_only_the_dev_and_docs_extras():
    assert undeclared(("tests", "docs"), declared("dev", "docs")) == {}


def test_moto_is_not_a_runtime_dependency_and_the_pipeline_imports_without_it():
    assert "moto" not in declared()
    assert "moto" in declared("dev") and "moto" in declared("bench")
    without_moto = (
        "import sys\n"
        "class NoMoto:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'moto' or name.startswith('moto.'):\n"
        "            raise ImportError('moto is not installed')\n"
        "sys.meta_path.insert(0, NoMoto())\n"
        "import flows.etl, flows.mart, blocks.register, blocks.limits, tasks.pipeline.month\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", without_moto], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports, by their full dotted names."""
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_the_pipeline_never_imports_the_benchmark():
    """The arrow points one way: benchmarks/ measures flows/ and tasks/, which never import it."""
    for path in [
        *PROJECT_ROOT.glob("flows/*.py"),
        *PROJECT_ROOT.glob("tasks/**/*.py"),
        *PROJECT_ROOT.glob("blocks/*.py"),
    ]:
        assert not any(name.split(".")[0] == "benchmarks" for name in imported_modules(path)), path


def test_environment_variables_are_read_in_the_settings_module_only():
    """Every TAXI_ setting a user can set is read in `tasks/settings.py`, where its default and meaning are."""
    reads = re.compile(r"os\.(environ\.get|getenv|environ\[)\(?[\"'](TAXI_\w+)")
    for path in [
        *PROJECT_ROOT.glob("flows/*.py"),
        *PROJECT_ROOT.glob("tasks/**/*.py"),
        *PROJECT_ROOT.glob("blocks/*.py"),
    ]:
        if path.name != "settings.py":
            assert not reads.findall(path.read_text()), path
