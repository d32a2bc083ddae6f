"""A plain run's checkpoint: where it lies, what it must have been written for, and reading it back."""

from __future__ import annotations

from pathlib import Path

from evolora.evolution.checkpoint import CheckpointError, load_checkpoint_file
from evolora.orchestrator.tracking.urls import sqlite_file

__all__ = [
    "run_checkpoint",
    "checkpoint_identity",
    "load_checkpoint",
    "CHECKPOINT_TAG",
    "INCOMPLETE_TAG",
]


# where a run's checkpoint is (`evolora run --resume RUN_ID` reads it)
CHECKPOINT_TAG = "evolora.checkpoint"


# set on a run stopped before its end: its champion is of what completed
INCOMPLETE_TAG = "evolora.incomplete"


def run_checkpoint(tracking_uri: str, run_id: str) -> Path:
    """A plain run's checkpoint: beside a local tracking store (``checkpoints/runs/RUN_ID.npz`` next to its
    database), else under ``./mlruns/checkpoints/runs``."""
    db = sqlite_file(tracking_uri)
    base = db.parent if db is not None else Path.cwd() / "mlruns"
    return base / "checkpoints" / "runs" / f"{run_id}.npz"


def checkpoint_identity(conf: dict, owner: dict | None = None) -> dict:
    """What a checkpoint must have been written for: the resolved config but for how the populations are
    scored (``ray``), which does not change the result; and its ``owner`` when it has one (a sweep's study)."""
    ident = {k: v for k, v in conf.items() if k != "ray"}
    return {**ident, "evolora.owner": owner} if owner else ident


def load_checkpoint(path: Path | None, config: dict) -> dict | None:
    """The checkpoint at ``path`` (None if there is none); refused if malformed, tampered or written for
    another config."""
    if path is None or not Path(path).is_file():
        return None
    ck = load_checkpoint_file(path)
    if not isinstance(ck, dict) or not {"loop", "run_id", "config"} <= set(ck):
        raise CheckpointError(f"checkpoint {path} lacks its loop state, run id or config")
    if ck["config"] != config:
        raise CheckpointError(
            f"checkpoint {path} was written for another config; delete it to start over"
        )
    return ck
