"""Scaling out on real servers: an Optuna study on PostgreSQL with two workers, and runs tracked through a
real MLflow tracking server (REST, proxied artifacts). Both servers are started by the tests on loopback."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.cli import main

from ..conftest import tiny_study

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    initdb = shutil.which("initdb") or (str(PG_BIN / "initdb") if (PG_BIN / "initdb").exists() else None)
    pg_ctl = shutil.which("pg_ctl") or (str(PG_BIN / "pg_ctl") if (PG_BIN / "pg_ctl").exists() else None)
    if not initdb or not pg_ctl:  # a required real component: fail, never skip
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing: apt-get install postgresql")
    import psycopg  # noqa: F401  (installed by `make setup` through the dev extra)
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="evolora-pg-"))  # directly under /tmp: reachable by the postgres user
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust"]), check=True,
                   capture_output=True)
    port = _free_port()
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                                 f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(Path(pg_ctl).resolve().parent / "createdb"), "-h", str(sock), "-p", str(port),
                                 "-U", "postgres", "optuna"]), check=True, capture_output=True)
    yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_postgresql_make_exactly_n_trials(tmp_path, postgres):
    study = tiny_study(tmp_path, evolution__generations=2)
    study["name"] = "pg-sweep"
    study["search"] = {"evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["sweep", str(path), "--n-trials", "4", "--workers", "2", "--storage", postgres, "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    trials = optuna.load_study(study_name="pg-sweep", storage=postgres).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) == 4


@pytest.mark.slow
def test_two_hosts_on_one_postgresql_make_exactly_n_trials(tmp_path, postgres):
    """Two working directories (no shared lock file) race on one storage: the claim lock lives in the
    database, so the study still ends with exactly N trials."""
    study = tiny_study(tmp_path, evolution__generations=2)
    study["name"] = "pg-hosts"
    study["search"] = {"evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    procs = []
    for host in ("a", "b"):
        d = tmp_path / host
        d.mkdir()
        (d / "s.yaml").write_text(yaml.safe_dump(study))
        cmd = [sys.executable, "-m", "orchestrator.cli", "sweep", "s.yaml", "--n-trials", "5", "--storage", postgres,
               "--no-progress", "--set", "model.threads=1"]
        procs.append(subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    trials = optuna.load_study(study_name="pg-hosts", storage=postgres).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4] and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["evolora:pid"] for t in trials}) == 2  # both hosts took trials


@pytest.mark.slow
def test_runs_through_a_real_mlflow_tracking_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(tiny_study(tmp_path, evolution__generations=2)))
        assert main(["run", str(path), "--no-progress", "--tracking-uri", uri]) == 0
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
        assert run.info.status == "FINISHED" and len(client.get_metric_history(run.info.run_id, "fit_best")) == 2
        out = tmp_path / "adapter"
        assert main(["export", "--run-id", run.info.run_id, "--out", str(out), "--tracking-uri", uri]) == 0
        assert (out / "adapter_model.safetensors").is_file()
        assert any((tmp_path / "server-artifacts").rglob("adapter_model.safetensors"))  # stored by the server
    finally:
        os.killpg(server.pid, 9)
        server.wait()


@pytest.mark.slow
def test_evolora_ui_serves_the_project_store(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp_path, evolution__generations=1)))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["run", str(path), "--no-progress"]) == 0  # into ./mlruns, the default store
    finally:
        os.chdir(cwd)
    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port)], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        deadline, body = time.time() + 120, None
        while time.time() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10",
                                              timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert body is not None and '"tests"' in body
    finally:
        os.killpg(ui.pid, 9)
        out = ui.communicate()[0]
    assert "optuna-dashboard" in out and str(tmp_path / "mlruns" / "optuna-journal.log") in out
