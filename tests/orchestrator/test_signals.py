"""SIGTERM — what schedulers, `docker stop` and `timeout` send — ends a run as Ctrl-C does: the MLflow run
KILLED with its metrics flushed, never left RUNNING; a sweep's workers fail their trials, keep their
checkpoints, and the next sweep command resumes them."""

import os
import signal
import subprocess
import sys
import time

import yaml

from evolora.evolution.checkpoint import load_checkpoint_file
from evolora.orchestrator.tracking.client import get_client

from ..conftest import run_cli_in, tiny_study, trial_checkpoint
from .test_sweep import _journal, _mlflow, _study


def _popen(tmp_path, argv):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "evolora", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_ends_a_run_killed_with_every_generation_it_made_logged(tmp_path):
    # nothing flushed before the end
    study = tiny_study(tmp_path, evolution__generations=500, mlflow__flush_every=1000)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _popen(tmp_path, ["run", "s.yaml", "--no-progress", "--tracking-uri", uri])
    deadline, run = time.time() + 300, None
    while time.time() < deadline and run is None and proc.poll() is None:
        time.sleep(0.5)
        if (tmp_path / "mlflow.db").exists():
            try:
                # under the store's creation lock, as every evolora process opens it
                client = get_client(uri)
                exp = client.get_experiment_by_name("tests")
                runs = client.search_runs([exp.experiment_id]) if exp else []
                run = runs[0] if runs else None
            except Exception:  # the store is being created
                run = None
    assert run is not None and proc.poll() is None, (
        "the run should have started",
        proc.poll(),
        proc.stderr.read()[-3000:] if proc.poll() is not None else "",
    )
    time.sleep(8)  # a few generations, all still in the tracker's buffer
    os.kill(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert (
        proc.returncode == 143 and err.strip().splitlines()[-1] == "evolora: terminated (SIGTERM)"
    )
    run = client.get_run(run.info.run_id)
    assert run.info.status == "KILLED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "fit_best")]
    assert len(steps) >= 2 and steps == list(range(len(steps)))  # flushed at the end, none lost
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "interrupted.txt" in logged and "error.txt" not in logged  # stopped, not broken


def test_sigterm_to_a_sweep_fails_its_workers_trials_keeps_their_checkpoints_and_the_sweep_resumes(
    tmp_path,
):
    path = _study(tmp_path, evolution__generations=10, data__train_subset=48)
    proc = _popen(
        tmp_path, ["sweep", str(path), "--n-trials", "2", "--workers", "2", "--no-progress"]
    )
    deadline = time.time() + 300

    def cks():
        return [trial_checkpoint(tmp_path / "mlruns" / "checkpoints", "sw", i) for i in (0, 1)]

    def gen(ck):
        try:
            return int(load_checkpoint_file(ck)["loop"]["gen"]) if ck.is_file() else -1
        except Exception:
            return -1

    while time.time() < deadline and proc.poll() is None and not all(gen(ck) >= 2 for ck in cks()):
        time.sleep(0.1)
    assert proc.poll() is None and all(gen(ck) >= 2 for ck in cks()), (
        "both workers should be inside their trials"
    )
    # the sweep's own process only, as `timeout` or a scheduler does
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=180) == 143, proc.stderr.read()[-3000:]
    study = _journal(tmp_path)
    assert [(t.state.name, t.user_attrs.get("evolora:failure")) for t in study.trials] == [
        ("FAIL", "interrupted")
    ] * 2
    assert all(ck.is_file() for ck in cks())
    client, parents, children = _mlflow(tmp_path)
    assert (
        sorted(c.info.status for c in children) == ["KILLED", "KILLED"]
        and parents[0].info.status == "KILLED"
    )
    assert run_cli_in(tmp_path, ["sweep", str(path), "--n-trials", "2", "--no-progress"]) == 0
    study = _journal(tmp_path)
    retries = [t for t in study.trials if t.user_attrs.get("evolora:retry_of") is not None]
    assert sorted(t.state.name for t in retries) == ["COMPLETE", "COMPLETE"]
    # from their checkpoints
    assert all(t.user_attrs["evolora:resumed_from_gen"] >= 2 for t in retries)
    client, _, children = _mlflow(tmp_path)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    for c in children:
        assert [m.step for m in client.get_metric_history(c.info.run_id, "fit_best")] == list(
            range(10)
        )
        assert "error.txt" not in {
            a.path for a in client.list_artifacts(c.info.run_id)
        }  # no stale error
