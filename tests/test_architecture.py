"""The dependency rule, on the source (every import statement, at any depth):

* evolution never imports torch, peft, mlflow, optuna, fitness or the orchestrator; fitness never imports the
  orchestrator; nothing imports the ``evolora`` facade's names; nothing in the orchestrator imports benchmarks;
* the orchestrator's rooms import downwards only (a room imports its own modules and those of lower rooms);
* installed, evolora is one top-level import name: the folders are ``evolora.<folder>`` and no code, test or
  example imports a folder as a top-level name."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (
    "evolution",
    "fitness",
    "orchestrator",
    "benchmarks",
    "studies",
)  # installed as evolora.<folder>
FORBIDDEN = {
    "evolution": {
        "torch",
        "peft",
        "mlflow",
        "optuna",
        "transformers",
        "evolora.fitness",
        "evolora.orchestrator",
        "evolora.benchmarks",
    },
    "fitness": {"evolora.orchestrator", "evolora.benchmarks", "mlflow", "optuna"},
    "orchestrator": {
        "evolora.benchmarks"
    },  # the bench is a command the CLI discovers (an entry point)
}
# The orchestrator's rooms, lowest first: a module imports from its own room or a lower one, never a higher one
# nor a sibling of the same rank.
ROOMS = {
    "errors": 0,
    "signals": 0,
    "study": 1,
    "tracking": 1,
    "assembly": 2,
    "distributed": 3,
    "run": 4,
    "sweep": 5,
    "cli": 6,
}


def _module_name(path: Path) -> str:
    """The installed name of a source file: orchestrator/run/trial.py is evolora.orchestrator.run.trial."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts if parts[0] == "evolora" else ["evolora", *parts])


def _statements(path: Path, top_level_only: bool = False):
    """(absolute module, imported names) of each import statement of a source file."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, tuple(a.name for a in node.names)


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_dependency_rule(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files
    bad = {}
    for f in files:
        hits = sorted({m for m, _ in _statements(f) if _within(m, FORBIDDEN[folder])})
        if hits:
            bad[str(f.relative_to(ROOT))] = hits
    assert not bad, f"{folder} imports what it must not: {bad}"


def test_nothing_imports_the_facade():
    """The Python API (``evolora/__init__.py``) is a facade over the packages: nothing inside imports its names."""
    subpackages = {f"evolora.{f}" for f in FOLDERS}
    bad = []
    for folder in FOLDERS:
        for f in (ROOT / folder).rglob("*.py"):
            for module, names in _statements(f):
                if module == "evolora" and not all(f"evolora.{n}" in subpackages for n in names):
                    bad.append(str(f.relative_to(ROOT)))
    assert not bad, bad


def test_the_folders_are_imported_as_evolora_sub_packages_only():
    """``import fitness`` would load a second copy of a package beside ``evolora.fitness``: no source, test or
    example names a folder as a top-level module (installed, there is none)."""
    files = [
        p
        for d in (*FOLDERS, "evolora", "tests", "examples", "docs")
        for p in (ROOT / d).rglob("*.py")
    ]
    bad = sorted(
        {
            str(f.relative_to(ROOT))
            for f in files
            for m, _ in _statements(f)
            if m.split(".")[0] in FOLDERS
        }
    )
    assert not bad, bad


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["evolora", "orchestrator"] else None


def test_the_orchestrator_rooms_import_downwards_only():
    files = sorted((ROOT / "orchestrator").rglob("*.py"))
    rooms = {p.stem if p.parent == ROOT / "orchestrator" else p.parent.name for p in files} - {
        "__init__"
    }
    assert rooms == set(ROOMS), (
        f"a room without a rank (or a rank without a room): {rooms ^ set(ROOMS)}"
    )
    bad = []
    for f in files:
        mine = _room(_module_name(f))
        for module, _ in _statements(f):
            theirs = _room(module)
            if mine and theirs and theirs != mine and ROOMS[theirs] >= ROOMS[mine]:
                bad.append(f"{_module_name(f)} -> {module}")
    assert not bad, bad


def test_the_room_check_sees_an_upward_import(tmp_path):
    assert ROOMS["run"] > ROOMS["assembly"] and ROOMS["sweep"] > ROOMS["run"]
    assert (
        _room("evolora.orchestrator.run.trial") == "run" and _room("evolora.fitness.tasks") is None
    )


# ---- module graph: no circles, nothing heavy at the CLI's import, no trial concepts in the inner loop -----
def _module_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    """{module: the project's modules it imports} from every import statement (with ``top_level_only``, the
    ones a module runs when it is imported: not inside functions or ``if TYPE_CHECKING``)."""
    paths = {_module_name(p): p for d in (*FOLDERS, "evolora") for p in (ROOT / d).rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        deps = set()
        for module, names in _statements(path, top_level_only):
            for t in [module, *(f"{module}.{n}" for n in names)]:
                while t and t not in paths:
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


def test_the_cli_loads_no_benchmark_nor_torch_module():
    graph = _module_graph(top_level_only=True)
    seen, todo = set(), ["evolora.orchestrator.cli.commands"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    assert not [m for m in seen if m.startswith("evolora.benchmarks")]


def test_the_inner_loop_raises_no_tracking_or_optuna_concepts():
    """evolution/ defines no exception about trials, pruning, fencing or tracking: those belong to the
    orchestrator that runs trials (orchestrator/errors.py)."""
    words = ("trial", "prune", "fence", "tracking", "optuna", "mlflow")
    for path in (ROOT / "evolution").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name)
                and b.id.endswith(("Error", "Exception"))
                or b.id in ("EvoloraError",)
                for b in node.bases
                if isinstance(b, ast.Name)
            ):
                assert not any(w in node.name.lower() for w in words), (path.name, node.name)


def test_no_module_over_400_lines():
    """A module holds one job: past 400 lines it holds two (split it by job, as orchestrator/ and fitness/ are)."""
    long = {
        str(p.relative_to(ROOT)): n
        for pkg in (*FOLDERS, "evolora")
        for p in (ROOT / pkg).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long


def test_no_function_over_60_lines():
    """A function does one thing a reader holds at once: past 60 lines it is several steps to name (as a
    trial's run is: its loop, its scoring, how it stopped)."""
    long = {
        f"{p.relative_to(ROOT)}::{n.name}": n.end_lineno - n.lineno + 1
        for pkg in (*FOLDERS, "evolora")
        for p in (ROOT / pkg).rglob("*.py")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and n.end_lineno - n.lineno + 1 > 60
    }
    assert not long, long


def test_each_task_setting_is_declared_once_and_reaches_the_task_from_the_study():
    """The model, lora, data and fitness sections are generated from the task's settings dataclasses (type,
    default, description and constraints declared once, where the task reads them), and a study's values reach
    the TaskSpec's sections unchanged: the LoRA rank goes study file → LoraConfig → LoraSettings → peft."""
    import dataclasses

    from pydantic_core import PydanticUndefined

    from evolora.fitness.settings import DataSettings, FitnessSettings, LoraSettings, ModelSettings
    from evolora.fitness.tables import Columns
    from evolora.orchestrator.assembly import task_spec
    from evolora.orchestrator.study.load import load_study
    from evolora.orchestrator.study.sections import (
        ColumnsConfig,
        DataConfig,
        FitnessConfig,
        LoraConfig,
        ModelConfig,
    )

    own = {"threads"}  # the study's alone: the process's torch threads
    checked = 0
    for section, cls in (
        (ModelConfig, ModelSettings),
        (LoraConfig, LoraSettings),
        (DataConfig, DataSettings),
        (ColumnsConfig, Columns),
        (FitnessConfig, FitnessSettings),
    ):
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(section.model_fields) - names <= own, section
        for f in dataclasses.fields(cls):
            if "doc" not in f.metadata:
                continue
            info = section.model_fields[f.name]
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            assert info.default is not PydanticUndefined and info.default == default, f.name
            assert (info.description or "") == f.metadata["doc"], f.name
            for m in info.metadata:
                for k in ("gt", "ge", "lt", "le", "pattern", "min_length", "max_length"):
                    if getattr(m, k, None) is not None:
                        assert f.metadata[k] == getattr(m, k), (f.name, k)
            checked += 1
    assert checked >= 35, checked

    cfg = load_study(ROOT / "studies" / "stsb-best.yaml")
    spec = task_spec(cfg)
    for name in ("model", "lora", "data", "fitness"):
        study, settings = getattr(cfg, name), getattr(spec, name)
        for f in dataclasses.fields(settings):
            if f.name in type(study).model_fields and "doc" in f.metadata:
                value = getattr(study, f.name)
                assert getattr(settings, f.name) == (
                    tuple(value) if isinstance(value, list) else value
                ), (name, f.name)
    assert spec.lora.rank == cfg.lora.rank and spec.data.columns == Columns()


@pytest.mark.parametrize("room", ["study", "tracking", "distributed", "run", "sweep"])
def test_each_room_re_exports_the_public_names_of_its_modules(room):
    """``from evolora.orchestrator.<room> import NAME`` gives the object its module defines, for every name in
    the ``__all__`` of the room's modules (loaded on first use: importing the room itself loads none of them)."""
    import importlib

    package = importlib.import_module(f"evolora.orchestrator.{room}")
    declared = {}
    for f in sorted((ROOT / "orchestrator" / room).glob("*.py")):
        if f.stem != "__init__":
            module = importlib.import_module(f"evolora.orchestrator.{room}.{f.stem}")
            declared.update({n: getattr(module, n) for n in getattr(module, "__all__", ())})
    assert set(package.__all__) == set(declared), set(package.__all__) ^ set(declared)
    for name, value in declared.items():
        assert getattr(package, name) is value, name
