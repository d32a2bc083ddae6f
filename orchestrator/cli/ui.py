"""``evolora ui``: the MLflow UI on the tracking store (MLflow's server as evolora's ``mlflow.app``,
:mod:`.uiapp`) and, when installed, optuna-dashboard on the Optuna storage — each server in its own process
group, its port checked first, its URLs printed once it answers, every process stopped on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from evolora.evolution.errors import ConfigError

__all__ = ["run_ui"]


def run_ui(
    tracking_uri: str | None, storage_arg: str | None, host: str, port: int, dashboard_port: int
) -> int:
    """The MLflow UI on the tracking store and, when installed, optuna-dashboard on the Optuna storage. Each
    server runs in its own process group; Ctrl-C or SIGTERM stops every process they started."""
    import signal
    import subprocess

    from evolora.orchestrator.sweep.storage import default_storage
    from evolora.orchestrator.tracking.runlog import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    storage = storage_arg or default_storage()
    servers, no_studies = _servers(uri, storage, host, port, dashboard_port)
    procs: list[subprocess.Popen] = []

    def stop(*_):
        raise KeyboardInterrupt

    env = {
        # MLflow's job runner (a huey consumer pool for GenAI evaluation jobs) is off unless the user turns it
        # on: the model-training UI needs none of it, and it doubles the start-up time
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",  # no usage reporting, no telemetry banner in the UI
        # the servers' libraries' warnings (deprecations, notes on plots) are not the user's business either
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS") or "ignore",
    }
    _check_port_free(host, port, "--port")
    if "Optuna dashboard" in servers:
        _check_port_free(host, dashboard_port, "--dashboard-port")
    old = signal.signal(signal.SIGTERM, stop)
    try:
        for cmd in servers.values():
            # a group of its own: killed as one
            procs.append(subprocess.Popen(cmd, start_new_session=True, env=env))
        if not _wait_until_serving(procs[0], host, port):
            print(
                f"evolora: error: the MLflow UI did not start (exit code {procs[0].returncode}; its output is above)",
                file=sys.stderr,
                flush=True,
            )
            return 1
        _announce(
            uri, storage, host, port, dashboard_port, "Optuna dashboard" in servers, no_studies
        )
        return _watch(procs)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
        _stop_groups(procs)


def _servers(
    uri: str, storage: str, host: str, port: int, dashboard_port: int
) -> tuple[dict[str, list[str]], bool]:
    """name → command of each server to start, and whether the Optuna storage holds no study yet."""
    import importlib.util
    import shutil

    from evolora.orchestrator.tracking.runlog import artifact_root

    servers = {
        "MLflow UI": [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
            "--app-name",
            "evolora",
            "--registry-store-uri",
            uri,
            "--uvicorn-opts",
            # no line per request, no start-up chatter: the addresses evolora prints, and errors
            "--no-access-log --log-level warning",
        ]
    }
    if (root := artifact_root(uri)) is not None:
        servers["MLflow UI"] += ["--default-artifact-root", root]
    dashboard = shutil.which(
        "optuna-dashboard",
        path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    # a journal file no sweep has written yet
    no_studies = "://" not in storage and not Path(storage).is_file()
    if dashboard and importlib.util.find_spec("optuna_dashboard") is not None and not no_studies:
        servers["Optuna dashboard"] = [
            dashboard,
            storage,
            "--host",
            host,
            "--port",
            str(dashboard_port),
            "--quiet",  # no server log lines, as for MLflow's
        ]
    return servers, no_studies


def _announce(
    uri: str,
    storage: str,
    host: str,
    port: int,
    dashboard_port: int,
    dashboard: bool,
    no_studies: bool,
) -> None:
    """The addresses, once the MLflow UI answers: the store, each experiment's runs table, the dashboard."""
    print(f"MLflow UI on {uri}: http://{host}:{port}", flush=True)
    # links that open on the runs table and charts, not the GenAI view
    for exp_id, name in _experiments(uri):
        print(
            f"  {name}: http://{host}:{port}/#/experiments/{exp_id}?workflowType=machine_learning",
            flush=True,
        )
    if dashboard:
        print(f"Optuna dashboard on {storage}: http://{host}:{dashboard_port}", flush=True)
    elif no_studies:
        print(
            f"Optuna dashboard: no Optuna storage at {storage} yet (run a sweep first)", flush=True
        )
    else:
        print(
            "Optuna dashboard: not installed (pip install 'evolora[dashboard]' or pip install optuna-dashboard)",
            flush=True,
        )


def _watch(procs: list) -> int:
    """Wait while the MLflow UI (the main server) runs; say once if the dashboard (a companion) exits."""
    told = False
    while procs[0].poll() is None:
        if len(procs) > 1 and procs[1].poll() is not None and not told:
            print(
                f"Optuna dashboard exited (code {procs[1].returncode}); the MLflow UI stays up",
                flush=True,
            )
            told = True
        time.sleep(0.5)
    return procs[0].returncode or 1


def _check_port_free(host: str, port: int, field: str) -> None:
    """A server would fail on a taken port only after its start-up; say it first (exit 2)."""
    import socket

    with socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
    ) as sock:
        # as the server will: a TIME_WAIT is no owner
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            raise ConfigError(
                field, f"cannot listen on {host}:{port} ({e.strerror or e})", port
            ) from None


def _wait_until_serving(proc, host: str, port: int, seconds: float = 120.0) -> bool:
    """True once the MLflow server answers its health check; False if it exits (or never answers) first."""
    import urllib.request

    deadline = time.time() + seconds
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/health"
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _experiments(uri: str) -> list[tuple[str, str]]:
    from evolora.orchestrator.tracking.runlog import experiment_names

    try:
        return experiment_names(uri)
    except Exception:  # an unreachable server: the UI itself will say more
        return []


def _stop_groups(procs) -> None:
    """SIGTERM each server's process group (server, its workers and job consumers), SIGKILL what lingers."""
    import signal

    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + 10
    for p in procs:
        with contextlib.suppress(Exception):
            p.wait(timeout=max(0.1, deadline - time.time()))
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # the group may outlive its leader
