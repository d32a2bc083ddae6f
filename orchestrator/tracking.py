"""MLflow tracking as an observer. The only module that talks to MLflow.

Default store: a SQLite database inside ``mlruns/`` (MLflow 3 refuses a plain file store) with artifacts
beside it. Per-generation metrics are buffered and flushed with one ``log_batch`` every few generations
(each logging call costs ~5 ms on SQLite whatever its size).
"""

from __future__ import annotations

import json
import platform
import time
import traceback
from pathlib import Path
from typing import Any

from evolution.observers import Observer

__all__ = ["default_tracking_uri", "MlflowTracker", "flatten", "get_client", "get_or_create_experiment"]

MLRUNS = "mlruns"


def default_tracking_uri(root: str | Path | None = None) -> str:
    base = Path(root or Path.cwd()) / MLRUNS
    return f"sqlite:///{base.resolve() / 'mlflow.db'}"


def _artifact_root(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "artifacts").as_uri()
    return None


def get_client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = _artifact_root(tracking_uri)
    try:
        return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except Exception:  # another process created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """Nested config → {"evolution.population": "16", ...}; lists become JSON."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("evolora", "torch", "transformers", "peft", "deap", "optuna", "mlflow", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


class MlflowTracker(Observer):
    """One MLflow run: params at start, buffered per-generation metrics, artifacts and status at the end."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, params: dict[str, Any],
                 tags: dict[str, str] | None = None, parent_run_id: str | None = None, flush_every: int = 5,
                 run_id: str | None = None, extra_params: dict[str, Any] | None = None) -> None:
        from mlflow.entities import Param

        self.client = get_client(tracking_uri)
        self.tracking_uri = tracking_uri
        self.flush_every = flush_every
        self._buffer: list = []
        self._since_flush = 0
        self._logged_upto = -1  # generations already in the run (a resumed run never logs a step twice)
        if run_id is not None:  # resume an existing run (a retried trial)
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            steps = [m.step for m in self.client.get_metric_history(run_id, "fit_best")]
            self._logged_upto = max(steps, default=-1)
            return
        exp_id = get_or_create_experiment(self.client, experiment, tracking_uri)
        all_tags = {**(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(exp_id, run_name=run_name, tags=all_tags)
        self.run_id = run.info.run_id
        merged = {**flatten(params), **{k: str(v) for k, v in (extra_params or {}).items()}}
        flat = [Param(k, v[:6000]) for k, v in merged.items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(self.run_id, params=flat[i : i + 100])

    # ---- observer hooks -----------------------------------------------------------------------------
    def on_generation(self, row: dict) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        step = int(row["gen"])
        if step <= self._logged_upto:  # logged by the attempt that was killed after flushing, before its checkpoint
            return
        for k, v in row.items():
            if k != "gen" and isinstance(v, (int, float)) and v == v:  # skip NaN
                self._buffer.append(Metric(k, float(v), ts, step))
        self._since_flush += 1
        if self._since_flush >= self.flush_every:
            self.flush()

    def on_checkpoint(self, state: dict) -> None:
        self.flush()  # what a checkpoint holds is logged: a resumed run neither loses nor repeats metrics

    def discard_unflushed(self) -> None:
        """Drop buffered rows: for a run stopped after its last checkpoint, which a resume recomputes."""
        self._buffer.clear()
        self._since_flush = 0

    def flush(self) -> None:
        for i in range(0, len(self._buffer), 1000):
            self.client.log_batch(self.run_id, metrics=self._buffer[i : i + 1000])
        self._buffer.clear()
        self._since_flush = 0

    # ---- direct logging ---------------------------------------------------------------------------
    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def finish(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        try:
            self.flush()
            if error is not None:
                self.log_text("".join(traceback.format_exception(error)), "error.txt")
        finally:
            self.client.set_terminated(self.run_id, status=status)
