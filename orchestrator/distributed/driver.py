"""The trial's Ray driver in a process of its own, so that a cluster going away cannot take the trial with it.

A process connected to a Ray cluster is terminated by Ray itself when the cluster's control store (GCS) stays
unreachable for ``gcs_rpc_server_reconnect_timeout_s`` (60 s by default: "Failed to connect to GCS … The
program will terminate"). A sweep worker holding that connection would die with it, and every trial after it.
So the trial never connects: :class:`RayDriver` starts ``python -m evolora.orchestrator.distributed.driver`` in its own
session, and that child calls ``ray.init``, holds the actors and forwards the messages. When the cluster goes
away the child ends, the trial sees the pipe close and fails with :class:`~evolora.orchestrator.errors.ClusterLost`
(its reason read from the child's log), and the sweep goes on. Each trial has its own child: its own actors,
on a local Ray of its own or on a shared cluster.

Frames on the pipes: an 8-byte length, then :func:`evolora.evolution.checkpoint.pack` data (no pickle either way).
Requests (parent → child): ``start`` (first), ``score`` (actor, token, message), ``wait`` (the next finished
score: ``ok`` with the actor's answer, ``died`` when its actor died or became unreachable, ``failed`` when the
scoring raised), ``replace`` (a new actor in a slot), ``pids``, ``close``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from evolora.evolution import ConfigError
from evolora.evolution.checkpoint import pack, unpack
from evolora.orchestrator.distributed.cluster import listening
from evolora.orchestrator.distributed.messages import (
    PidsReply,
    ReplaceReply,
    Request,
    StartReply,
    StartRequest,
    WaitReply,
)
from evolora.orchestrator.errors import ActorFailed, ClusterLost
from evolora.orchestrator.signals import deferred_signals

__all__ = ["RayDriver", "check_ray", "start_ray"]


def _send(
    stream: BinaryIO, obj: Request | StartReply | WaitReply | ReplaceReply | PidsReply
) -> None:
    data = pack(obj)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _recv(stream: BinaryIO) -> dict | None:
    """The next frame, or None when the other side has gone (end of stream)."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    n = int.from_bytes(head, "little")
    data = stream.read(n)
    return None if len(data) < n else unpack(data)


def _bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


class RayDriver:
    """The parent's side: one child process holding ``actors`` Ray actors of :class:`.actor.Scorer`."""

    def __init__(
        self,
        conf: dict,
        actors: int,
        threads: int,
        address: str | None,
        num_gpus: float,
        num_cpus: float,
        ready_timeout: float,
    ) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="evolora-ray-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evolora.orchestrator.distributed.driver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=_child_env(address),
            start_new_session=True,
        )
        self._token = 0
        self.pids: list[int] = []
        # Ctrl-C or SIGTERM during start-up: the child (its own session) and its Ray go too
        try:
            reply = self._ask(
                {
                    "op": "start",
                    "conf": conf,
                    "actors": actors,
                    "threads": threads,
                    "address": address,
                    "num_gpus": num_gpus,
                    "num_cpus": num_cpus,
                    "ready_timeout": ready_timeout,
                }
            )
        except BaseException:
            with deferred_signals():
                self.close()
            raise
        if reply["status"] == "config_error":
            self.close()
            raise ConfigError(reply["field"], reply["message"], reply["value"])
        if reply["status"] != "ready":
            self.close()
            raise ClusterLost(reply["error"])
        self.pids = list(reply["pids"])

    # ---- requests -------------------------------------------------------------------------------------
    def score(self, actor: int, message: bytes) -> int:
        """Send ``message`` to actor ``actor``'s ``score``; the token :meth:`wait` returns its answer under."""
        self._token += 1
        self._tell(
            {"op": "score", "actor": actor, "token": self._token, "message": _bytes(message)}
        )
        return self._token

    def wait(self) -> tuple[int, bool, bytes | str]:
        """The next finished score: (token, True, the actor's answer) or (token, False, why its actor is gone).
        A scoring that raised is :class:`ActorFailed`."""
        reply = self._ask({"op": "wait"})
        if reply["status"] == "failed":
            raise ActorFailed(reply["error"])
        if reply["status"] == "ok":
            return int(reply["token"]), True, reply["answer"].tobytes()
        return int(reply["token"]), False, reply["error"]

    def replace(self, actor: int) -> None:
        self._ask({"op": "replace", "actor": actor})

    def actor_pids(self) -> list[int]:
        return list(self._ask({"op": "pids"})["pids"])

    def close(self) -> None:
        """The actors killed, the child's Ray shut down (a local one stops), the child ended."""
        if self.proc.poll() is None:
            try:
                _send(self.proc.stdin, {"op": "close"})
                self.proc.wait(timeout=60)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    # ---- the pipe -------------------------------------------------------------------------------------
    def _tell(self, request: Request) -> None:
        try:
            _send(self.proc.stdin, request)
        except (BrokenPipeError, OSError, ValueError):
            self._lost()

    def _ask(self, request: Request) -> dict:
        self._tell(request)
        try:
            reply = _recv(self.proc.stdout)
        except (OSError, ValueError):
            reply = None
        if reply is None:
            self._lost()
        return reply

    def _lost(self):
        """The child ended: its cluster went away (or it was killed). ClusterLost with what its log says last."""
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # the pipe broke while it lives: end it
            self.proc.kill()
            code = self.proc.wait()
        why = _last_words(Path(self._log.name))
        self.close()
        raise ClusterLost(
            f"the Ray cluster went away: its driver process ended (exit code {code})"
            + (f"; Ray said: {why}" if why else "")
        )


def _last_words(log: Path, keep: int = 2) -> str:
    """The last error lines of the child's log (Ray's own, or a traceback's last line)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if " E " in ln or "Error" in ln or "error" in ln]
    return " | ".join((errors or lines)[-keep:])[-600:]


def start_ray(address: str | None, num_cpus: float | None = None) -> None:
    """Connect to the cluster at ``address`` (None: start a local one of ``num_cpus`` logical CPUs) unless
    connected already; a cluster that cannot be reached is a ConfigError naming ``ray.address``. Called in the
    trial's driver process (:mod:`evolora.orchestrator.distributed.driver`), never in the trial's own."""
    import ray

    if ray.is_initialized():
        return
    if address is not None and address != "auto":
        listening(address)
    try:
        if address is None:
            # "local": never a cluster /tmp/ray last recorded
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(
            "ray.address", f"no Ray cluster reachable there ({type(e).__name__}: {e})", address
        ) from None


def _child_env(address: str | None) -> dict:
    """The driver's environment. ``ray start --head`` turns token authentication on when this machine has a
    token (Ray ≥ 2.59), but ``ray.init(address=…)`` with ``RAY_AUTH_MODE`` unset then sends none and is refused
    (Ray 2.60): follow ``ray start``'s rule (read when ray is imported, so set here); a cluster without
    authentication accepts a client that sends a token. An explicit ``RAY_AUTH_MODE`` is kept."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if (
        address is not None
        and "RAY_AUTH_MODE" not in env
        and (
            env.get("RAY_AUTH_TOKEN")
            or env.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()
        )
    ):
        env["RAY_AUTH_MODE"] = "token"
    return env


def check_ray(cfg) -> None:
    """Before a sweep writes anything: the cluster of ``cfg.ray.address`` answers (a local Ray needs no check)."""
    if cfg.ray.actors and cfg.ray.address is not None:
        RayDriver({}, 0, 1, cfg.ray.address, 0.0, 1.0, 60.0).close()


# ---- the child ---------------------------------------------------------------------------------------
class _Child:
    """What the child holds: the actor class, the actors, the scores in flight."""

    def __init__(self, start: StartRequest) -> None:
        import ray

        from evolora.orchestrator.distributed.actor import Scorer

        self.ray = ray
        self.conf, self.threads = start["conf"], int(start["threads"])
        local_cpus = max(os.cpu_count() or 1, int(start["actors"]) * float(start["num_cpus"]))
        start_ray(start["address"], local_cpus)
        self.cls = ray.remote(
            num_cpus=start["num_cpus"],
            num_gpus=start["num_gpus"],
            max_restarts=0,
            max_task_retries=0,
        )(Scorer)
        self.actors = [
            self.cls.remote(self.conf, self.threads) for _ in range(int(start["actors"]))
        ]
        self.pending: dict = {}  # ObjectRef → token

    def ready(self, timeout: float) -> StartReply:
        ray = self.ray
        try:
            return {
                "status": "ready",
                "pids": ray.get([a.pid.remote() for a in self.actors], timeout=timeout),
            }
        except ray.exceptions.GetTimeoutError:
            return {
                "status": "lost",
                "error": f"{len(self.actors)} Ray actors were not all placed within "
                f"{timeout:.0f} s: the cluster lacks the resources (ray.threads CPUs and ray.num_gpus GPUs each)",
            }
        except ray.exceptions.RayError as e:
            return {"status": "lost", "error": f"the Ray actors could not build the task: {e}"}

    def handle(self, req: Request) -> WaitReply | ReplaceReply | PidsReply | None:
        op = req["op"]
        if op == "score":
            ref = self.actors[int(req["actor"])].score.remote(req["message"].tobytes())
            self.pending[ref] = int(req["token"])
            return None
        if op == "wait":
            return self._wait()
        if op == "replace":
            i = int(req["actor"])
            try:
                self.ray.kill(self.actors[i])
            except Exception:
                pass
            self.actors[i] = self.cls.remote(self.conf, self.threads)
            return {"status": "ok"}
        if op == "pids":
            return {"pids": self.ray.get([a.pid.remote() for a in self.actors])}
        raise ValueError(f"unknown request {op!r}")

    def _wait(self) -> WaitReply:
        ray = self.ray
        ready, _ = ray.wait(list(self.pending), num_returns=1)
        token = self.pending.pop(ready[0])
        try:
            return {"status": "ok", "token": token, "answer": _bytes(ray.get(ready[0]))}
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            return {
                "status": "died",
                "token": token,
                "error": f"{type(e).__name__}: {str(e)[:300]}",
            }
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            return {"status": "failed", "token": token, "error": f"{type(cause).__name__}: {cause}"}

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.ray.shutdown()


def main() -> None:
    """The child: frames from stdin, answers on the stdout it was given (anything printed goes to stderr)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trial's process decides when this ends
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    start = _recv(inp)
    if start is None:
        return
    try:
        child = _Child(start)
    except ConfigError as e:
        _send(
            out,
            {
                "status": "config_error",
                "field": e.path,
                "message": e.message,
                "value": None if e.value is ... else str(e.value),
            },
        )
        return
    _send(out, child.ready(float(start["ready_timeout"])))
    try:
        while (req := _recv(inp)) is not None and req["op"] != "close":
            reply = child.handle(req)
            if reply is not None:
                _send(out, reply)
    finally:
        child.close()


if __name__ == "__main__":
    main()
