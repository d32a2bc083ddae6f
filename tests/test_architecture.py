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


# ---- module graph: no circles, nothing heavy at the CLI's import, no trial concepts in the inner loop -----
PACKAGES = ("evolution", "fitness", "orchestrator", "evolora", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    """{module: the project's modules it imports} from every import statement (with ``top_level_only``, the
    ones a module runs when it is imported: not inside functions or ``if TYPE_CHECKING``)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        deps = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_between_modules():
    """No two modules import each other, directly or around a loop, in any package — lazy and type-only
    imports included: each job has one direction."""
    assert _cycles(_module_graph()) == []


def test_the_cycle_check_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_cli_does_not_import_benchmarks_when_it_loads():
    graph = _module_graph(top_level_only=True)
    seen, todo = set(), ["orchestrator.cli"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    assert not [m for m in seen if m.startswith("benchmarks")]


def test_the_inner_loop_raises_no_tracking_or_optuna_concepts():
    """evolution/ defines no exception about trials, pruning, fencing or tracking: those belong to the
    orchestrator that runs trials (orchestrator/errors.py)."""
    words = ("trial", "prune", "fence", "tracking", "optuna", "mlflow")
    for path in (ROOT / "evolution").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception"))
                                                      or b.id in ("EvoloraError",) for b in node.bases
                                                      if isinstance(b, ast.Name)):
                assert not any(w in node.name.lower() for w in words), (path.name, node.name)


def test_no_module_over_400_lines():
    """A module holds one job: past 400 lines it holds two (split it by job, as orchestrator/ and fitness/ are)."""
    long = {str(p.relative_to(ROOT)): n for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_no_function_over_60_lines():
    """A function does one thing a reader holds at once: past 60 lines it is several steps to name (as a
    trial's run is: its loop, its scoring, how it stopped)."""
    long = {f"{p.relative_to(ROOT)}::{n.name}": n.end_lineno - n.lineno + 1 for pkg in PACKAGES
            for p in (ROOT / pkg).rglob("*.py") for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60}
    assert not long, long


def test_every_study_section_key_a_task_spec_field_names_is_copied_by_name():
    """The walk from the study file to the task: a key of the model, lora, data or fitness section named as a
    TaskSpec field reaches the task with the study's value (no hand-copied field list to drift)."""
    import dataclasses

    from orchestrator.trialspec import _SPEC_SECTIONS, task_spec
    from orchestrator.studyfile import load_study

    cfg = load_study(ROOT / "studies" / "stsb-best.yaml")
    spec = task_spec(cfg)
    fields = {f.name for f in dataclasses.fields(spec)}
    derived = {"seed", "trunk_memo", "blocks", "columns", "val_sources", "terms"}  # computed from the section
    shared = [(name, k) for name in _SPEC_SECTIONS for k in type(getattr(cfg, name)).model_fields
              if k in fields and k not in derived]
    assert len(shared) >= 30, shared
    for name, k in shared:
        value = getattr(getattr(cfg, name), k)
        assert getattr(spec, k) == (tuple(value) if isinstance(value, list) else value), (name, k)
