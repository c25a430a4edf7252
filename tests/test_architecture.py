"""Architecture checks (issue 7): sizes, import layers, settings in one place, package names.

Pure and fast: they read the source tree and run import-linter; no server starts.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "transforms")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60  # AST end_lineno - lineno + 1
# Generated or unrolled kernels allowed over MAX_MODULE_LINES, each alone in its own module with a
# comment there saying why (paths from the repository root). None is that long today.
KERNEL_MODULES: frozenset[str] = frozenset()
SETTINGS_MODULE = "pipelines/core/settings.py"  # the one module that reads the environment
READS_ENVIRONMENT = re.compile(
    r"\bos\.(environ|getenv)\b|\bfrom\s+os\s+import\b[^\n]*\b(environ|getenv)\b"
)


def _modules() -> Iterator[Path]:
    """Every Python module of the two top-level packages, in path order."""
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method of a module, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the project at ``cwd`` (no cache written) and capture its report."""
    venv_bin = str(Path(sys.executable).parent)
    command = shutil.which("lint-imports", path=os.pathsep.join([venv_bin, os.environ["PATH"]]))
    assert command is not None, "lint-imports is not installed (dev dependency import-linter)"
    return subprocess.run(
        [command, "--no-cache", "--no-logo"],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _contract_name(matches: Callable[[dict[str, Any]], bool]) -> str:
    """The name of the one import-linter contract in pyproject.toml that ``matches`` picks."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        contracts = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    (name,) = [contract["name"] for contract in contracts if matches(contract)]
    return str(name)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_no_module_over_the_size_limit() -> None:
    """No module in pipelines/ or transforms/ is over 300 lines, except the listed kernels."""
    too_long = []
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES and _name(path) not in KERNEL_MODULES:
            too_long.append(f"{_name(path)} ({lines} lines)")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: " + ", ".join(too_long)


def test_kernel_allow_list_names_only_existing_modules() -> None:
    """Every module on the kernel allow-list exists, so the list cannot go stale unnoticed."""
    missing = sorted(name for name in KERNEL_MODULES if not (ROOT / name).is_file())
    assert not missing, f"KERNEL_MODULES names modules that do not exist: {missing}"


def test_no_function_over_the_size_limit() -> None:
    """No function or method, nested ones included, is over 60 lines (end_lineno - lineno + 1)."""
    too_long = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for function in _functions(tree):
            assert function.end_lineno is not None
            lines = function.end_lineno - function.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                too_long.append(f"{_name(path)}:{function.lineno} {function.name} ({lines} lines)")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def test_import_contracts_hold() -> None:
    """The import-linter contracts of pyproject.toml (the layers of DESIGN §2) are all kept."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "statement", "imported", "contract"),
    [
        (
            "pipelines/core/outcomes.py",
            "import pipelines.run",
            "pipelines.run",
            _contract_name(lambda contract: contract["type"] == "layers"),
        ),
        (
            "pipelines/run/jobs.py",
            "import prefect",
            "prefect",
            _contract_name(lambda contract: "prefect" in contract.get("forbidden_modules", [])),
        ),
    ],
    ids=["core-imports-run", "run-imports-prefect"],
)
def test_import_contracts_catch_a_crossed_layer(
    tmp_path: Path, module: str, statement: str, imported: str, contract: str
) -> None:
    """In a copy of the project with one forbidden import added, lint-imports fails naming it."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    source = target.read_text(encoding="utf-8")
    target.write_text(f"{source.rstrip()}\n\n{statement}\n", encoding="utf-8")
    added_line = len(source.rstrip().splitlines()) + 2

    result = _lint_imports(tmp_path, {"PYTHONPATH": str(tmp_path)})

    report = _one_line(result.stdout)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"{contract} BROKEN" in report, result.stdout
    # The import exists only in the copy: naming its line proves the copy was analysed.
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {imported} (l.{added_line})" in report, result.stdout


def test_only_the_settings_module_reads_the_environment() -> None:
    """No module of pipelines/ or transforms/ but the settings module mentions os.environ/getenv."""
    readers = [
        _name(path)
        for path in _modules()
        if _name(path) != SETTINGS_MODULE
        and READS_ENVIRONMENT.search(path.read_text(encoding="utf-8"))
    ]
    assert not readers, f"only {SETTINGS_MODULE} may read the environment; also: {readers}"


def test_every_pipelines_subpackage_has_a_one_line_docstring() -> None:
    """Every subpackage of pipelines/ has an __init__.py whose docstring is one line."""
    problems = []
    for folder in sorted((ROOT / "pipelines").rglob("*")):
        if not folder.is_dir() or folder.name == "__pycache__":
            continue
        init = folder / "__init__.py"
        if not init.is_file():
            problems.append(f"{_name(folder)}: no __init__.py")
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        if docstring is None or len(docstring.strip().splitlines()) != 1:
            problems.append(f"{_name(init)}: docstring is not one line")
    assert not problems, "\n".join(problems)


def test_no_module_shadows_the_standard_library() -> None:
    """No module or package in pipelines/ or transforms/ is named like a standard-library module."""
    shadowing = []
    for path in _modules():
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if name in sys.stdlib_module_names:
            shadowing.append(_name(path))
    assert not shadowing, f"named like standard-library modules: {shadowing}"
