"""Liveness depends on time, not on generation length: a live worker with long generations is never
declared dead; a worker whose trial *was* declared dead (as another host would) stops writing at once and the
retry continues from the checkpoint, so every generation is in the MLflow run exactly once."""

import os
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from evolora.evolution.checkpoint import load_checkpoint_file
from evolora.orchestrator.cli.commands import main

from ..conftest import tiny_study, trial_checkpoint


def _study(tmp_path, name, **over):
    s = tiny_study(tmp_path, **over)
    s["name"] = name
    s["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    s["sweep"] = {"pruner": "none", "stale_after": 2}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(s))
    return path


def _journal(tmp_path, name):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "mlruns" / "optuna-journal.log")))
    return optuna.load_study(study_name=name, storage=storage), storage


@pytest.mark.slow
def test_generations_longer_than_stale_after_never_kill_a_live_trial(tmp_path):
    # full model, 192 pairs, one thread per worker: each generation takes several seconds, stale_after is 2 s
    path = _study(
        tmp_path, "long", lora__layers=None, data__train_subset=192, evolution__generations=3
    )
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["sweep", str(path), "--n-trials", "3", "--workers", "2", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    study, _ = _journal(tmp_path, "long")
    assert [t.state.name for t in study.trials] == [
        "COMPLETE"
    ] * 3  # nothing declared dead, nothing retried
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    longest = max(
        m.value
        for r in runs
        if "mlflow.parentRunId" in r.data.tags
        for m in client.get_metric_history(r.info.run_id, "gen_s")
    )
    assert longest > 2.0, "the test needs a generation longer than stale_after to mean anything"


def test_a_trial_declared_dead_while_its_worker_lives_stops_writing_and_its_retry_resumes(tmp_path):
    path = _study(tmp_path, "fence", evolution__generations=10, data__train_subset=48)
    cmd = [sys.executable, "-m", "evolora", "sweep", str(path), "--n-trials", "1", "--no-progress"]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline, gen = time.time() + 300, -1
    while time.time() < deadline and proc.poll() is None and gen < 3:
        ck = trial_checkpoint(tmp_path / "mlruns" / "checkpoints", "fence", 0)
        try:
            gen = int(load_checkpoint_file(ck)["loop"]["gen"]) if ck.is_file() else -1
        except Exception:
            gen = -1
        time.sleep(0.05)
    assert proc.poll() is None and gen >= 3, "the sweep should still be inside trial 0"
    # what another host's recovery does to a trial whose heartbeat it believes stale
    study, storage = _journal(tmp_path, "fence")
    tid = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("fence"), 0
    )
    storage.set_trial_user_attr(tid, "evolora:failure", "worker died")
    storage.set_trial_state_values(tid, optuna.trial.TrialState.FAIL)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    study, _ = _journal(tmp_path, "fence")
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE"]  # the fenced attempt told nothing; its retry completed
    retry = study.trials[1]
    assert retry.user_attrs["evolora:retry_of"] == 0 and retry.user_attrs["evolora:root"] == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("tests").experiment_id])
        if "mlflow.parentRunId" in r.data.tags
    ]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # one run: the retry continued it
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "fit_best")]
    assert sorted(steps) == list(range(10))  # every generation exactly once: no second writer


def test_a_worker_imports_the_heavy_runner_before_it_claims(tmp_path):
    """The first beat is written at the claim and the heartbeat thread starts right after: a worker must not
    spend the seconds of importing torch/transformers/peft/mlflow in between (under load that gap exceeded
    stale_after and other hosts declared live trials dead). In a fresh interpreter: the runner is imported
    before the first claim, and a trial's heartbeat thread runs before `run_trial` is looked up."""
    code = r"""
import sys
import evolora.orchestrator.sweep.worker as sw
seen = {}
def claim(ctx, study):
    seen["runner_at_claim"] = "evolora.orchestrator.run.trial" in sys.modules
    return None
sw.claim = claim
class Ctx:
    timeout = None
study = type("S", (), {"get_trials": lambda self, **k: []})()
sw.run_worker(Ctx(), 0, study)
print(seen)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "{'runner_at_claim': True}" in out.stdout
