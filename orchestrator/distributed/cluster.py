"""A local Ray head several trials or benchmark rows share, and the check that an address listens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evolora.evolution import ConfigError

__all__ = ["LocalCluster", "listening"]


def listening(address: str, timeout: float = 5.0) -> None:
    """Something accepts connections at ``address`` (ray.init itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError("ray.address", f"nothing listens there ({e})", address) from None


class LocalCluster:
    """A Ray head on this machine (``ray start --head --block`` in a session of its own) that several trials or
    benchmark rows share by its :attr:`address`; :meth:`stop` kills its session (GCS, raylet, workers)."""

    def __init__(
        self,
        num_cpus: float,
        port: int | None = None,
        env: dict | None = None,
        timeout: float = 120.0,
    ) -> None:
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        ray_cli = Path(sys.executable).with_name("ray")
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                str(ray_cli),
                "start",
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={num_cpus}",
                "--include-dashboard=false",
                "--disable-usage-stats",
                "--block",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                listening(self.address, timeout=1.0)
                return
            except ConfigError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"ray start --head on port {port} did not come up") from None
                time.sleep(0.5)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
