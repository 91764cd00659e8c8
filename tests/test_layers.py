"""The package's layers (docs/ARCHITECTURE.md): each folder of ``kdci_core`` imports only the
folders below it (function-local imports included), no module edits ``sys.path``, and the
public names of ACCEPTANCE section 1 import from where they are documented."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import REPO, SHARED

PACKAGE = REPO / "kdci_core"

#: what each layer may import (besides itself); the table of docs/ARCHITECTURE.md
ALLOWED = {
    "common": set(),
    "data": {"common"},
    "kdci": {"common"},
    "models": {"common", "data"},
    "figures": {"common", "data"},
    "teachers": {"common", "data", "models"},
    "methods": {"common", "data", "models"},
    "distill": {"common", "data", "models", "kdci", "methods", "teachers"},
    "diagnostics": {"common", "data", "models", "kdci", "methods", "teachers", "distill"},
    "runs": {"common", "data", "models", "kdci", "methods", "teachers", "distill", "figures"},
    "reports": {"common", "data", "models", "kdci", "methods", "teachers", "distill", "figures",
                "runs", "diagnostics"},
    "cli": {"common", "data", "models", "kdci", "methods", "teachers", "distill", "figures", "runs",
            "diagnostics", "reports"},
}
#: modules at the package root and the layer they belong to
ROOT_MODULES = {"__init__": "root", "__main__": "cli", "errors": "common"}


def _layer(path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else ROOT_MODULES[rel.stem]


def _imported_layers(path) -> set[str]:
    """Layers of kdci_core that ``path`` imports, relative and absolute, at any depth."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    package = list(rel[:-1]) if rel[-1] != "__init__" else list(rel[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == "kdci_core"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
                targets = [mod] if mod else [[a.name] for a in node.names]
            elif node.module and node.module.split(".")[0] == "kdci_core":
                rest = node.module.split(".")[1:]
                targets = [rest] if rest else [[a.name] for a in node.names]
        for t in targets:
            if t:
                out.add(ROOT_MODULES.get(t[0], t[0]) if len(t) == 1 and t[0] in ROOT_MODULES else t[0])
    return out


def test_every_layer_imports_only_the_layers_below_it():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        if layer in ("root", "cli"):
            continue
        for used in _imported_layers(path) - {layer}:
            if used not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(REPO)} ({layer}) imports {used}")
    assert not bad, "\n".join(bad)


def test_the_layer_table_is_a_dag_that_names_every_folder():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ALLOWED)
    order = []
    pending = dict(ALLOWED)
    while pending:  # topological order exists iff there is no circle
        ready = [n for n, deps in pending.items() if deps <= set(order)]
        assert ready, f"the layer table has a circle among {sorted(pending)}"
        order += sorted(ready)
        for n in ready:
            del pending[n]


@pytest.mark.skipif(not (SHARED / "tools" / "import_circles.py").exists(),
                    reason=f"../shared/tools/import_circles.py not found at {SHARED}")
def test_no_import_circle_inside_the_package():
    proc = subprocess.run([sys.executable, str(SHARED / "tools" / "import_circles.py"), str(PACKAGE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_module_edits_sys_path():
    files = [*PACKAGE.rglob("*.py"), *(REPO / "app").rglob("*.py"), *(REPO / "pages").rglob("*.py")]
    offenders = [str(p.relative_to(REPO)) for p in files if "sys.path" in p.read_text()]
    assert offenders == []


def test_public_names_import_from_their_documented_homes():
    from kdci_core.errors import InputError
    from kdci_core.kdci import CausalIntervention, build_confounder_dictionary
    from kdci_core.models import build_model

    assert issubclass(InputError, ValueError)
    assert callable(build_confounder_dictionary) and callable(build_model)
    assert CausalIntervention.__module__ == "kdci_core.kdci.intervention"


def test_the_command_line_works_from_any_directory(tmp_path):
    """``python -m kdci_core`` and the ``kdci`` script, run outside the repository."""
    proc = subprocess.run([sys.executable, "-m", "kdci_core", "--help"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "distill" in proc.stdout, proc.stderr
    script = __import__("shutil").which("kdci")
    if script is None:
        pytest.skip("the kdci console script is not installed (pip install -e .)")
    proc = subprocess.run([script, "runs", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "resume" in proc.stdout, proc.stderr
