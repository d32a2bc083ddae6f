"""Tracking through a failing network: a real MLflow server behind a proxy that cuts answers half-way (the
call landed, the client cannot know) and drops connections (it did not). MLflow's own HTTP retries are
switched off here (``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``) so that what is shown is evolora's retry layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evolora.orchestrator.errors import TrackingUnavailable
from evolora.orchestrator.tracking.client import RetryingClient, transient
from evolora.orchestrator.tracking.runlog import MlflowTracker

from ..conftest import tiny_study
from ..helpers.faulty_proxy import FaultyProxy
from ..helpers.servers import free_port, start_mlflow_server, wait_for_a_logged_generation

pytestmark = pytest.mark.slow


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """(proxy, direct client): a real MLflow server, reached by the code under test through the proxy."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    proxy = FaultyProxy(port)
    try:
        yield proxy, MlflowClient(f"http://127.0.0.1:{port}")
    finally:
        proxy.close()
        os.killpg(server.pid, 9)
        server.wait()


def test_cut_answers_and_dropped_connections_lose_nothing_and_double_nothing(served):
    proxy, direct = served
    proxy.add("create", "POST", "/runs/create", "cut")  # the run is made; its id never arrives
    # params, then generation 0's metrics
    proxy.add("batch", "POST", "/runs/log-batch", "cut", times=2)
    proxy.add("dropped", "POST", "/runs/log-batch", "drop")  # generation 1's metrics never reach it
    # the table's first write lands
    proxy.add("upload", "PUT", "/mlflow-artifacts/artifacts/", "cut")
    proxy.add("get", "GET", "/runs/get", "cut")
    proxy.add("status", "POST", "/runs/update", "drop")
    tracker = MlflowTracker(
        proxy.uri, "faults", "r", {"evolution": {"population": 8}}, flush_every=1
    )
    for gen in range(4):
        tracker.on_generation({"gen": gen, "fit_best": 0.5 + gen / 10, "nevals": 8})
    tracker.log_table([{"gen": 0, "who": "champion", "score": 0.25}], "samples.json")
    tracker.log_table([{"gen": 3, "who": "champion", "score": 0.75}], "samples.json")
    fig = plt.figure(figsize=(2, 2))
    tracker.log_image(fig, "curves", step=0)
    plt.close(fig)
    tracker.finish()

    assert {k: v for k, v in proxy.fired.items()} == {
        "create": 1,
        "batch": 2,
        "dropped": 1,
        "upload": 1,
        "get": 1,
        "status": 1,
    }
    exp = direct.get_experiment_by_name("faults")
    runs = direct.search_runs([exp.experiment_id])
    # the lost answer's run was adopted, not doubled
    assert len(runs) == 1 and runs[0].info.run_id == tracker.run_id
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["evolution.population"] == "8"
    history = direct.get_metric_history(run.info.run_id, "fit_best")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]  # each generation once
    table = json.loads(Path(direct.download_artifacts(run.info.run_id, "samples.json")).read_text())
    assert [r[0] for r in table["data"]] == [0, 3]  # the landed append was not made twice
    assert {"path": "samples.json", "type": "table"} in json.loads(
        run.data.tags["mlflow.loggedArtifacts"]
    )
    assert run.data.tags.get("mlflow.loggedImages") == "True"


def test_a_refused_call_is_not_retried_and_an_outage_ends_in_tracking_unavailable(served):
    proxy, _ = served
    client = RetryingClient(MlflowClient(proxy.uri), proxy.uri, seconds=3)
    with pytest.raises(MlflowException) as refused:
        client.get_run("0" * 32)  # no such run: the server answered, nothing to retry
    assert not transient(refused.value)
    assert sum(1 for _, path in proxy.requests if "/runs/get" in path) == 1
    proxy.down(60)
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="unreachable for 3 s") as gone:
        client.get_experiment_by_name("faults")
    assert transient(gone.value.__cause__) and time.monotonic() - start < 30
    # it did retry
    assert sum(1 for _, path in proxy.requests if "experiments/get-by-name" in path) >= 2


@pytest.mark.slow
def test_a_sweep_outlives_a_tracking_outage_longer_than_the_retry_window(tmp_path, served):
    """The server is unreachable for longer than the retry window while a trial logs: the trial fails as
    `tracking unavailable`, its retry resumes the same run from the checkpoint, and the sweep completes
    its trials, each run holding every generation once."""
    proxy, direct = served
    gens = 8
    study = tiny_study(tmp_path, evolution__generations=gens, name="tracking-outage")
    study["mlflow"]["flush_every"] = 1
    study["sweep"] = {"pruner": "none", "sampler": "random", "max_retries": 5}
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    env = {
        **os.environ,
        "EVOLORA_MLFLOW_RETRY_SECONDS": "3",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    sweep = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "evolora"),
            "sweep",
            "s.yaml",
            "--n-trials",
            "3",
            "--tracking-uri",
            proxy.uri,
            "--storage",
            str(tmp_path / "journal.log"),
            "--no-progress",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        wait_for_a_logged_generation(direct)  # the first trial is logging generations
        proxy.down(6)
        out = sweep.communicate(timeout=900)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, out[-3000:]
    assert "retry 1 in 1 s" in out  # the outage was said, not hidden
    trials = optuna.load_study(
        study_name="tracking-outage",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
        ),
    ).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 3, [(t.number, t.state.name, t.user_attrs) for t in trials]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and all(t.user_attrs["evolora:failure"] == "tracking unavailable" for t in failed)
    assert all("unreachable" in t.user_attrs["evolora:failure_detail"] for t in failed)
    exp = direct.get_experiment_by_name("tests")
    children = [
        r for r in direct.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags
    ]
    # retries resumed, not doubled
    assert len(children) == 3, [(r.info.run_name, r.info.status) for r in children]
    for r in children:
        assert r.info.status == "FINISHED"
        steps = [m.step for m in direct.get_metric_history(r.info.run_id, "fit_best")]
        assert sorted(steps) == list(range(gens)), (r.info.run_name, steps)


def test_an_unreachable_tracking_server_is_said_at_once_and_bounded_by_evolora_s_budget(tmp_path):
    """Nothing set but evolora's budget (MLflow's own HTTP retries left at evolora's default): a run against a
    port nobody listens on says each retry and exits 1 naming the server once the budget is spent — not
    minutes of silence inside MLflow's retries."""
    import socket

    with socket.socket() as s:  # a free port, closed again: connections to it are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_study(tmp_path)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["EVOLORA_MLFLOW_RETRY_SECONDS"] = "4"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "evolora",
            "run",
            "s.yaml",
            "--no-progress",
            "--tracking-uri",
            f"http://127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert any("retry 1 in 1 s" in line for line in lines)
    assert lines[-1].startswith(
        f"evolora: error: MLflow tracking store http://127.0.0.1:{port} unreachable for 4 s"
    )
