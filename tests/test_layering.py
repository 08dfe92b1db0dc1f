"""The layers keep their jobs: imports point one way, and every prefect.yaml entrypoint loads."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import
FORBIDDEN = {
    "cosmos_core": {"prefect", "flows", "tasks"},
    "manifests": {"torch", "prefect", "cosmos_core", "flows", "tasks"},
    "tasks": {"torch", "cosmos_core", "flows"},
    "flows": {"torch", "cosmos_core"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_modules(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_prefect_yaml_entrypoint_loads_as_a_flow_of_the_right_name():
    from prefect import Flow

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = set()
    for deployment in config["deployments"]:
        module_path, attribute = deployment["entrypoint"].split(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, attribute)
        assert isinstance(flow, Flow), deployment["entrypoint"]
        names.add(f"{flow.name}/{deployment['name']}")
    assert {"text2image/batch", "video2world/batch", "text2world/batch", "generate-shard/gpu"} <= names
    assert "manifest-inbox/text2world" in names


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(path: Path, package: str, modules: set[str]) -> set[str]:
    """The package's modules a file imports, at module level or inside functions (`from a.b import c`
    counts as a.b.c when that is a module, else a.b), with the packages whose __init__ that runs."""
    name = module_name(path)
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names
            ]
        else:
            continue
        for target in targets:
            # importing a.b.c runs a/b/__init__.py first: an edge to each enclosing package too, except
            # the importer's own (whose __init__ is already running or done)
            parts = target.split(".")
            enclosing = (".".join(parts[:i]) for i in range(2, len(parts) + 1))
            found.update(p for p in enclosing if p == target or not name.startswith(p + "."))
    return {t for t in found if t in modules and t != name and t.split(".")[0] == package}


def test_no_import_cycles_inside_cosmos_core():
    """Function-level imports included: a cycle hidden inside a function is still a cycle."""
    paths = {module_name(p): p for p in (REPO / "cosmos_core").rglob("*.py")}
    graph = {name: internal_imports(path, "cosmos_core", set(paths)) for name, path in paths.items()}
    cycles, state = [], {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


# Names only the registry may spell. "text2image" and "video2world" are left out: they are also the model
# families of the presets and the guardrail (cosmos_core/presets.py), which are not manifest tasks.
def registry_only_names() -> set[str]:
    from manifests.tasks import STAGES, TASKS

    return (set(TASKS) | set(STAGES)) - {"text2image", "video2world"}


def string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in a file except docstrings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_task_and_stage_names_are_spelled_only_in_the_registry():
    names = registry_only_names()
    registry = REPO / "manifests" / "tasks.py"
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {value!r}"
        for package in ("cosmos_core", "manifests", "flows", "tasks")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != registry
        for line, value in string_constants(path)
        if value in names
    ]
    assert offenders == []
