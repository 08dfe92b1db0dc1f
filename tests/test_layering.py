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
