"""The layout's rules, read from the source: imports go one way, and no piece grows too big.

``api → jobs ← workers → tasks``: the core imports none of the others but the schedule's data,
handlers see only the catalogue, the settings, storage and the files kept there, the job
states (a parent reads its children's) and the upkeep of the platform's own data, and nothing imports the API or the workers (processes are started by module path).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

PRODUCT = ("api", "jobs", "workers", "tasks", "schedules")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
# What each package may import of ours, besides itself.
ALLOWED = {
    "api": ("jobs",),
    "jobs": ("schedules",),
    "workers": ("jobs", "tasks", "schedules"),
    "tasks": (
        "jobs.catalogue",
        "jobs.settings",
        "jobs.storage",
        "jobs.files",
        "jobs.models",
        "jobs.upkeep",
        "jobs.imports",
    ),
    "schedules": (),
}


def modules(packages: tuple[str, ...] = PRODUCT) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


# Sizes hold for the tests and benchmarks too; only migrations are exempt.
SIZED = (*PRODUCT, "tests", "bench")


def imported(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def ours(name: str) -> bool:
    return name.split(".")[0] in (*PRODUCT, "migrations", "bench", "tests")


def allowed(package: str, name: str) -> bool:
    if name.split(".")[0] == package:
        return True
    return any(name == prefix or name.startswith(prefix + ".") for prefix in ALLOWED[package])


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_layer_may(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    names = {name for name in imported(path) if ours(name)}
    refused = sorted(name for name in names if not allowed(package, name) and not _is_submodule_alias(name))

    assert not refused, f"{path.relative_to(ROOT)} imports {refused}"


def _is_submodule_alias(name: str) -> bool:
    """``from jobs import service`` yields ``jobs`` and ``jobs.service``; the bare package name
    ``jobs`` is then allowed only where ``jobs.service`` is, which the other entry decides."""
    return "." not in name


@pytest.mark.parametrize("path", list(modules(SIZED)), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_longer_than_300_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_no_function_is_longer_than_40_lines() -> None:
    long = []
    for path in modules(SIZED):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({length} lines)")
    assert not long, long


def test_the_failure_header_prefix_is_written_in_one_module() -> None:
    writers = [path.relative_to(ROOT) for path in modules() if '"x-conveyor-' in path.read_text()]
    assert writers == [Path("jobs/messages.py")]


def test_no_job_state_exists_that_nothing_assigns() -> None:
    from jobs.models import JobState

    source = "\n".join(path.read_text() for path in modules())
    unassigned = [
        state for state in JobState if f"JobState.{state.name}" not in source.replace("class JobState", "")
    ]
    assert not unassigned


def test_an_installed_package_holds_every_subpackage() -> None:
    """``pip install .`` (the image) gets only what pyproject.toml's package list finds."""
    import tomllib

    from setuptools import find_packages

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(ROOT), include=include["include"]))
    wanted = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in (*PRODUCT, "migrations")
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert wanted <= found, sorted(wanted - found)
