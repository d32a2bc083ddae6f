"""Scaling out on real servers: an Optuna study on PostgreSQL with two workers, and runs tracked through a
real MLflow tracking server (REST, proxied artifacts). Both servers are started by the tests on loopback."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from mlflow.tracking import MlflowClient

from evolora.orchestrator.cli.commands import main

from ..conftest import tiny_study, trial_checkpoint
from ..helpers.servers import free_port as _free_port
from ..helpers.servers import start_mlflow_server as _start_mlflow_server
from ..helpers.servers import wait_for_a_logged_generation

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


_PG: dict = {}  # the running server's pg_ctl and data directory, for tests that restart it


def _restart_postgres(down: float) -> None:
    """Fast shutdown (every connection dropped), ``down`` seconds with no server at all, then start again."""

    def pg_ctl(
        *args: str,
    ) -> None:  # output to DEVNULL: a pipe would hang, the started server inherits it
        subprocess.run(
            _as_postgres([_PG["pg_ctl"], "-D", _PG["data"], "-w", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    pg_ctl("-m", "fast", "stop")
    time.sleep(down)
    pg_ctl("-l", _PG["log"], "-o", _PG["options"], "start")


class _ConnectionPeak:
    """The most connections the server held at once to the test database beyond those open when it started
    (earlier tests of this process may still hold some), sampled every 0.2 s."""

    def __init__(self, url: str):
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.value, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._baseline = self._count()

    def _count(self) -> int:
        query = sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar() - 1  # less its own

    def start(self) -> "_ConnectionPeak":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            # the server is down or full: the next sample tells
            try:
                self.value = max(self.value, self._count() - self._baseline)
            except sqlalchemy.exc.OperationalError:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    initdb = shutil.which("initdb") or (
        str(PG_BIN / "initdb") if (PG_BIN / "initdb").exists() else None
    )
    pg_ctl = shutil.which("pg_ctl") or (
        str(PG_BIN / "pg_ctl") if (PG_BIN / "pg_ctl").exists() else None
    )
    if not initdb or not pg_ctl:  # a required real component: fail, never skip
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) are missing: apt-get install postgresql"
        )
    import tempfile

    import psycopg  # noqa: F401  (installed by `make setup` through the dev extra)

    # directly under /tmp: reachable by the postgres user
    base = Path(tempfile.mkdtemp(prefix="evolora-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-w", "-l", str(base / "log"), "-o", options, "start"]
        ),
        check=True,
        capture_output=True,
    )
    _PG.update(pg_ctl=pg_ctl, data=str(data), log=str(base / "log"), options=options)
    subprocess.run(
        _as_postgres(
            [
                str(Path(pg_ctl).resolve().parent / "createdb"),
                "-h",
                str(sock),
                "-p",
                str(port),
                "-U",
                "postgres",
                "optuna",
            ]
        ),
        check=True,
        capture_output=True,
    )
    yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
    )
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_postgresql_make_exactly_n_trials(tmp_path, postgres):
    study = tiny_study(tmp_path, evolution__generations=2)
    study["name"] = "pg-sweep"
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert (
            main(
                [
                    "sweep",
                    str(path),
                    "--n-trials",
                    "4",
                    "--workers",
                    "2",
                    "--storage",
                    postgres,
                    "--no-progress",
                ]
            )
            == 0
        )
    finally:
        os.chdir(cwd)
    trials = optuna.load_study(study_name="pg-sweep", storage=postgres).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(
        t.state.name == "COMPLETE" for t in trials
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) == 4


@pytest.mark.slow
def test_two_hosts_on_one_postgresql_make_exactly_n_trials(tmp_path, postgres):
    """Two working directories (no shared lock file) race on one storage: the claim lock lives in the
    database, so the study still ends with exactly N trials."""
    study = tiny_study(tmp_path, evolution__generations=2)
    study["name"] = "pg-hosts"
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    procs = []
    for host in ("a", "b"):
        d = tmp_path / host
        d.mkdir()
        (d / "s.yaml").write_text(yaml.safe_dump(study))
        cmd = [
            sys.executable,
            "-m",
            "evolora",
            "sweep",
            "s.yaml",
            "--n-trials",
            "5",
            "--storage",
            postgres,
            "--no-progress",
            "--set",
            "model.threads=1",
        ]
        procs.append(
            subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    trials = optuna.load_study(study_name="pg-hosts", storage=postgres).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4] and all(
        t.state.name == "COMPLETE" for t in trials
    )
    assert len({t.user_attrs["evolora:pid"] for t in trials}) == 2  # both hosts took trials


def test_hosts_starting_at_once_on_a_fresh_postgresql_database(postgres):
    """Optuna creates its tables and enum types when a storage is first opened; four processes doing it at
    once on an empty database must all get a working storage (a race on CREATE TYPE, seen in the soak)."""
    import psycopg

    fresh = f"fresh{os.getpid()}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {fresh}")
    url = postgres.rsplit("/", 1)[0] + "/" + fresh
    code = (
        "import sys, optuna\nfrom evolora.orchestrator.sweep.storage import open_storage\n"
        "s = optuna.create_study(study_name='x', storage=open_storage(sys.argv[1]), load_if_exists=True)\n"
        "print(len(s.trials))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]


def test_a_connection_lost_inside_get_all_trials_is_retried_not_raised(postgres):
    """The server drops the storage's connection between the two queries of Optuna's get_all_trials. Optuna
    takes the failure for an oversized IN list and queries again on the same session, which raises
    PendingRollbackError (wrapped in StorageInternalError): that is still a lost connection, and the storage
    must wait and retry, not kill the worker (CI of stop 17 lost a worker to exactly this)."""
    import psycopg
    import sqlalchemy
    from optuna.exceptions import StorageInternalError

    from evolora.orchestrator.sweep.storage import open_storage

    storage = open_storage(postgres)
    study = optuna.create_study(study_name="lost-mid-read", storage=storage)
    for _ in range(3):
        study.enqueue_trial({})
    armed = []

    def kill_own_backend(conn, cursor, statement, *args):
        if armed and "FROM trials" in statement:
            armed.clear()
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(postgres, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                while admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone():
                    time.sleep(0.05)

    engine = storage._inner.engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", kill_own_backend)
    try:
        armed.append(1)  # Optuna's own storage: the worker would die here
        with pytest.raises(StorageInternalError) as raised:
            storage._inner.get_all_trials(study._study_id)
        assert isinstance(raised.value.__cause__, sqlalchemy.exc.PendingRollbackError)
        armed.append(1)  # evolora's storage: the same loss is waited out
        trials = storage.get_all_trials(study._study_id)
        assert not armed and [t.state.name for t in trials] == ["WAITING"] * 3
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", kill_own_backend)


@pytest.mark.slow
def test_a_sweep_survives_postgresql_restarting_and_makes_exactly_n_trials(tmp_path, postgres):
    """PostgreSQL goes down mid-sweep (fast shutdown: every connection dropped) and stays down for seconds,
    while trials beat, check their fence and report: storage calls wait and retry until it is back, the
    claim lock is taken again, and the study still ends with exactly N complete trials and nothing failed."""
    study = tiny_study(tmp_path, evolution__generations=4, name="pg-restart")
    study["sweep"] = {"pruner": "none", "sampler": "random"}
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    sweep = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "evolora"),
            "sweep",
            "s.yaml",
            "--n-trials",
            "4",
            "--storage",
            postgres,
            "--no-progress",
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # One observer storage without a pool: each look opens and closes its connection, so polling adds nothing to
    # the server's connection count (a new `load_study(storage=url)` per poll keeps its pooled connection until
    # the garbage collector runs, and enough of them hit max_connections).
    observer = optuna.storages.RDBStorage(
        postgres, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool}
    )
    peak = _ConnectionPeak(postgres).start()
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                done = [
                    t
                    for t in optuna.load_study(study_name="pg-restart", storage=observer).trials
                    if t.state.name == "COMPLETE"
                ]
            except KeyError:  # not created yet
                done = []
            if done:
                break
            time.sleep(0.5)
        else:
            pytest.fail("no trial completed")
        _restart_postgres(down=8.0)
        out = sweep.communicate(timeout=900)[0]
    finally:
        peak.stop()
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, out[-3000:]
    trials = optuna.load_study(study_name="pg-restart", storage=observer).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, [
        (t.number, t.state.name, t.user_attrs) for t in trials
    ]
    assert "database" in out.lower()  # the outage was noticed and said, not hidden
    # Every host and worker shares the server's max_connections (100 by default): a sweep holds a bounded few
    # (measured here: 4 with one worker, 8 with two, across the restart), never one more per trial or retry.
    assert 0 < peak.value <= 12, peak.value


@pytest.mark.slow
def test_runs_through_a_real_mlflow_tracking_server(tmp_path):
    port = _free_port()
    server = _start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(tiny_study(tmp_path, evolution__generations=2)))
        assert main(["run", str(path), "--no-progress", "--tracking-uri", uri]) == 0
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
        assert (
            run.info.status == "FINISHED"
            and len(client.get_metric_history(run.info.run_id, "fit_best")) == 2
        )
        out = tmp_path / "adapter"
        assert (
            main(["export", "--run-id", run.info.run_id, "--out", str(out), "--tracking-uri", uri])
            == 0
        )
        assert (out / "adapter_model.safetensors").is_file()
        # stored by the server
        assert any((tmp_path / "server-artifacts").rglob("adapter_model.safetensors"))
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
    ui = subprocess.Popen(
        [sys.executable, "-m", "evolora", "ui", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    try:
        deadline, body = time.time() + 120, None
        while time.time() < deadline and body is None:
            try:
                body = (
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10",
                        timeout=2,
                    )
                    .read()
                    .decode()
                )
            except OSError:
                time.sleep(0.5)
        assert body is not None and '"tests"' in body
        # what `evolora ui` prints once its server answers
        said = _read_until(ui.stdout, "Optuna dashboard", 60)
    finally:
        ui.send_signal(signal.SIGTERM)  # stops the servers it started, then itself
        out = said + ui.communicate(timeout=60)[0]
    assert "Optuna dashboard" in out and str(tmp_path / "mlruns" / "optuna-journal.log") in out


def _read_until(stream, needle: str, seconds: float) -> str:
    """A child's output until it holds ``needle`` (or ``seconds`` pass): what it said so far."""
    import select

    out, deadline = b"", time.time() + seconds
    while needle.encode() not in out and time.time() < deadline:
        ready, _, _ = select.select([stream.fileno()], [], [], 0.5)
        if ready:
            # the pipe itself: nothing left in a reader's buffer
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


@pytest.mark.slow
def test_a_sweep_survives_its_mlflow_server_being_killed_and_restarted(tmp_path):
    """The tracking server is SIGKILLed while the first trial logs and restarted on the same port and
    store a few seconds later: the sweep completes, and every trial's run holds its whole per-generation
    history, each step once (MLflow's client retries with backoff; a trial run is never left half-logged)."""
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_mlflow_server(tmp_path, port)
    gens = 6
    study = tiny_study(tmp_path, evolution__generations=gens, name="mlflow-restart")
    study["mlflow"]["flush_every"] = 1
    study["sweep"] = {"pruner": "none", "sampler": "random"}
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    sweep = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "evolora"),
            "sweep",
            "s.yaml",
            "--n-trials",
            "3",
            "--tracking-uri",
            uri,
            "--storage",
            str(tmp_path / "journal.log"),
            "--no-progress",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = MlflowClient(uri)
        wait_for_a_logged_generation(client)  # the first trial is logging generations
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        time.sleep(5)
        server = _start_mlflow_server(tmp_path, port)
        out = sweep.communicate(timeout=900)[0]
        assert sweep.returncode == 0, out[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
        os.killpg(server.pid, 9)
        server.wait()
    server = _start_mlflow_server(tmp_path, port)
    try:
        trials = optuna.load_study(
            study_name="mlflow-restart",
            storage=optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
            ),
        ).trials
        assert [t.state.name for t in trials] == ["COMPLETE"] * 3
        runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(children) == 3 and all(r.info.status == "FINISHED" for r in children)
        for r in children:
            steps = [m.step for m in client.get_metric_history(r.info.run_id, "fit_best")]
            # whole history, no step twice
            assert sorted(steps) == list(range(gens)), (
                r.info.run_name,
                steps,
            )
        assert client.get_model_version_by_alias("mlflow-restart", "champion") is not None
        # loaded by name from the tracking server, in a fresh process outside the repository
        code = (
            "import sys, mlflow, pandas as pd\nmlflow.set_tracking_uri(sys.argv[1])\n"
            "m = mlflow.pyfunc.load_model('models:/mlflow-restart@champion')\n"
            "print(float(m.predict(pd.DataFrame({'sentence1': ['A man plays.'], 'sentence2': ['A man plays.']}))[0]))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, uri],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        # a sentence against itself
        assert abs(float(proc.stdout.strip().splitlines()[-1]) - 1.0) < 1e-5
    finally:
        os.killpg(server.pid, 9)
        server.wait()


@pytest.mark.slow
def test_soak_two_hosts_two_workers_each_three_sigkills(tmp_path, postgres):
    """Two "hosts" (working directories with distinct host identities) of two workers each share one
    PostgreSQL study, one MLflow server and one checkpoint directory; three workers are SIGKILLed mid-trial,
    each after its trial has checkpointed. The study still ends with exactly 12 complete trials (each kill
    leaves a FAIL record whose retry completed), 12 child runs each holding every generation once, and a
    killed-and-resumed trial reproduces bit for bit."""
    import random

    from evolora.evolution.checkpoint import load_checkpoint_file

    # opened under the schema lock the hosts also take
    from evolora.orchestrator.sweep.storage import (
        open_storage,
    )

    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_mlflow_server(tmp_path, port)
    gens, n = 6, 12
    study = tiny_study(tmp_path, evolution__generations=gens, name="soak")
    study["sweep"] = {"pruner": "none", "sampler": "random", "stale_after": 10}
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    shared = tmp_path / "checkpoints"
    hosts, logs = [], []
    try:
        for name in ("a", "b"):
            d = tmp_path / name
            d.mkdir()
            (d / "s.yaml").write_text(yaml.safe_dump(study))
            logs.append(open(d / "out.log", "w"))
            hosts.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "evolora"),
                        "sweep",
                        "s.yaml",
                        "--n-trials",
                        str(n),
                        "--workers",
                        "2",
                        "--storage",
                        postgres,
                        "--tracking-uri",
                        uri,
                        "--checkpoint-dir",
                        str(shared),
                        "--no-progress",
                    ],
                    cwd=d,
                    env={**os.environ, "EVOLORA_HOST": f"host-{name}"},
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
            )
        rng, killed, deadline = random.Random(7), {}, time.time() + 900
        while len(killed) < 3 and time.time() < deadline and any(h.poll() is None for h in hosts):
            time.sleep(rng.uniform(0.5, 3.0))
            try:
                trials = optuna.load_study(study_name="soak", storage=open_storage(postgres)).trials
            except KeyError:
                continue
            victims = []
            for t in trials:
                pid, root = (
                    t.user_attrs.get("evolora:pid"),
                    t.user_attrs.get("evolora:root", t.number),
                )
                ck = trial_checkpoint(shared, "soak", root)
                if (
                    t.state.name != "RUNNING"
                    or pid is None
                    or pid in killed.values()
                    or not ck.is_file()
                ):
                    continue
                try:
                    gen = int(load_checkpoint_file(ck)["loop"]["gen"])
                except Exception:  # being written
                    continue
                if 1 <= gen < gens - 2:
                    victims.append((t.number, pid))
            if victims:
                number, pid = rng.choice(victims)
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed[number] = pid
                except ProcessLookupError:
                    pass
        assert len(killed) == 3, f"only {len(killed)} kills landed"
        for h in hosts:
            h.wait(timeout=900)
        out = "".join((tmp_path / name / "out.log").read_text() for name in ("a", "b"))
        trials = optuna.load_study(study_name="soak", storage=open_storage(postgres)).trials
        states = Counter(t.state.name for t in trials)
        assert states == {"COMPLETE": n, "FAIL": 3}, (states, out[-3000:])
        for number in killed:
            assert trials[number].user_attrs["evolora:failure"] == "worker died"
            retry = trials[number]
            # a retry may itself have been killed: follow the chain
            while retry.state.name != "COMPLETE":
                retry = next(
                    t for t in trials if t.user_attrs.get("evolora:retry_of") == retry.number
                )
            assert retry.user_attrs["evolora:resumed_from_gen"] >= 1
        assert len({t.user_attrs["evolora:host"] for t in trials}) == 2  # both hosts worked
        client = MlflowClient(uri)
        runs = client.search_runs(
            [client.get_experiment_by_name("tests").experiment_id], "tags.`optuna.study` = 'soak'"
        )
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert (
            len(children) == n and len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
        )
        for r in children:
            assert r.info.status == "FINISHED", r.info.run_name
            steps = [m.step for m in client.get_metric_history(r.info.run_id, "fit_best")]
            # whole history, no step twice
            assert sorted(steps) == list(range(gens)), (
                r.info.run_name,
                steps,
            )
        resumed = next(
            t
            for t in trials
            if t.state.name == "COMPLETE" and t.user_attrs.get("evolora:resumed_from_gen")
        )
        rep = subprocess.run(
            [
                str(Path(sys.executable).parent / "evolora"),
                "reproduce",
                "soak",
                "--trial",
                str(resumed.number),
                "--storage",
                postgres,
                "--no-progress",
            ],
            cwd=tmp_path / "a",
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert rep.returncode == 0 and "identical" in rep.stdout, (
            rep.stdout[-3000:] + rep.stderr[-2000:]
        )
        print(
            f"soak: {dict(states)}; killed trials {sorted(killed)}; per host "
            f"{dict(Counter(t.user_attrs['evolora:host'] for t in trials))}; reproduced trial {resumed.number} "
            f"(resumed from generation {resumed.user_attrs['evolora:resumed_from_gen']}) bit for bit"
        )
    finally:
        for h in hosts:
            if h.poll() is None:
                h.kill()
        for f in logs:
            f.close()
        os.killpg(server.pid, 9)
        server.wait()
