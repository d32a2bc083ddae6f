"""Real servers for tests: a free local port and an MLflow tracking server on a SQLite store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(tmp_path: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on ``tmp_path``'s store (artifacts proxied through the server), in its own process
    group (stop it with ``os.killpg``); returns once /health answers."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, 9)
    pytest.fail("mlflow server did not start")


def wait_for_a_logged_generation(client, experiment: str = "tests", timeout: float = 300) -> None:
    """Until a sweep's child run in ``experiment`` has logged a generation (``fit_best``), polling ``client``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if any(
            r.data.metrics.get("fit_best") is not None and "mlflow.parentRunId" in r.data.tags
            for r in runs
        ):
            return
        time.sleep(0.2)
    pytest.fail("the sweep never logged a generation")
