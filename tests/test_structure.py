"""The package's shape: data flows one way, every import goes down a layer or stays inside one, no cycles.

Layers, lowest first (``parameters -> networks -> SONATA files -> partition -> config -> bionet ->
run -> sweep/report``); a module may import only from its own layer or the ones below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"bmtk_scaling.errors", "bmtk_scaling.environment", "bmtk_scaling.atomic", "bmtk_scaling._bmtk_private",
     "bmtk_scaling.progress"},
    {"bmtk_scaling.sonata", "bmtk_scaling.mechanisms", "bmtk_scaling.sites"},
    {"network_builders"},
    {"bmtk_scaling.partition"},
    {"bmtk_scaling.config"},
    {"bmtk_scaling.bionet"},
    {"bmtk_scaling.run"},
    {"bmtk_scaling.sweep"},
    {"bmtk_scaling.report"},
    {"bmtk_scaling.api", "bmtk_scaling.cli", "bmtk_scaling"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("bmtk_scaling", "network_builders"):
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    best = None
    for i, members in enumerate(LAYERS):
        for m in members:
            if (module == m or module.startswith(m + ".")) and (best is None or len(m) > len(best[1])):
                best = (i, m)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[0]


def _imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down(module):
    up = sorted(dep for dep in GRAPH[module] if _layer(dep) > _layer(module) and dep != "bmtk_scaling")
    assert not up, f"{module} (layer {_layer(module)}) imports from a higher layer: {up}"


def test_no_import_cycles():
    ignore = {"bmtk_scaling", "network_builders"}  # package inits: importing a submodule runs them anyway
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH[node] - ignore):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state and module not in ignore:
            visit(module)


def test_bmtk_internals_only_in_one_module():
    """A private attribute of a bmtk object is touched in bmtk_scaling/_bmtk_private.py and nowhere else."""
    private = ("._sim_mods", "._spike_writer", "._rank_node_ids", "._virtual_nodes", "._node_pop", "._prop_adaptors",
               "._node_populations", "._rank_node_gids", "._target_networks", "._nedges", "._set_valid_steps",
               "._get_gids", "._local_gids", "._synapses")
    offenders = {name: [p for p in private if p in path.read_text()] for name, path in MODULES.items()
                 if name != "bmtk_scaling._bmtk_private"}
    assert not {k: v for k, v in offenders.items() if v}


def test_every_subpackage_is_packaged():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert packages <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(packages - listed)}"
