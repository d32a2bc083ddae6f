"""The dependency rule: evolution never imports torch, peft, mlflow, optuna, fitness or orchestrator;
fitness never imports orchestrator; nothing imports the evolora facade (checked on the source, every import
statement, at any depth)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "evolution": {"torch", "peft", "mlflow", "optuna", "transformers", "fitness", "orchestrator", "evolora"},
    "fitness": {"orchestrator", "mlflow", "optuna", "evolora"},
    "orchestrator": {"evolora"},  # the Python API is a facade: nothing inside evolora imports it
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rule(package):
    files = sorted((ROOT / package).glob("*.py"))
    assert files
    bad = {f.name: sorted(_imports(f) & FORBIDDEN[package]) for f in files if _imports(f) & FORBIDDEN[package]}
    assert not bad, f"{package} imports what it must not: {bad}"
