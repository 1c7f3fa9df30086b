"""The dependency direction of STYLE.md: networks never import training, decoding never imports a network,
nothing imports the CLI."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "maskgit"


def imported_modules(path: Path) -> set[str]:
    """Absolute dotted names of the maskgit modules that `path` imports (relative imports resolved)."""
    package = ["maskgit", *path.relative_to(SRC).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {n for n in found if n.startswith("maskgit")}


@pytest.mark.parametrize("module", ["vq/vqgan.py", "vq/quantizer.py", "transformer.py", "weights.py",
                                    "evaluation/classifier.py"])
def test_networks_and_weight_io_do_not_import_training(module):
    assert not [m for m in imported_modules(SRC / module) if m.startswith("maskgit.training")]


@pytest.mark.parametrize("module", ["decoding.py", "schedules.py"])
def test_decoding_never_imports_a_network(module):
    assert not [m for m in imported_modules(SRC / module)
                if m.startswith(("maskgit.transformer", "maskgit.vq", "maskgit.pipeline"))]


def test_nothing_imports_the_cli():
    users = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
             if p.relative_to(SRC).parts[0] != "cli" and any(m.startswith("maskgit.cli") for m in imported_modules(p))]
    assert not users
