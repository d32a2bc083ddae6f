"""Export a run's champion as a stock PEFT adapter directory (loads without evolora installed)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.tracking.models import download_model
from evolora.orchestrator.tracking.runlog import artifact_names, download_artifact, find_run

__all__ = ["export_run", "export_model"]


def _check_out(out: Path) -> None:
    """``out`` must be a new or empty directory, not a symlink, in a place this process can write: checked
    (and its parent made) before anything is downloaded."""
    if out.is_symlink():
        raise ConfigError("--out", "is a symlink; give the directory itself", str(out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError("--out", "exists and is not an empty directory", str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            "--out", f"cannot create its parent directory ({e.strerror})", str(out)
        ) from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ConfigError("--out", f"{out.parent} is not writable", str(out))


def _place(local: Path, out: Path) -> Path:
    if out.exists():
        out.rmdir()
    shutil.move(str(local), str(out))
    return out


def export_model(model_uri: str, out: str | Path, tracking_uri: str) -> Path:
    """``models:/NAME@ALIAS`` (or ``/VERSION``, or a logged model's URI) → the stock PEFT adapter it holds."""
    from evolora.fitness.serving import MODEL_FILE

    out = Path(out)
    _check_out(out)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # nothing half-written at `out`
        try:
            local = download_model(tracking_uri, model_uri, Path(tmp))
        except LookupError as e:
            raise ConfigError(
                "MODEL_URI", f"cannot resolve in {tracking_uri}: {e}", model_uri
            ) from None
        found = [p.parent for p in local.glob(f"data/*/{MODEL_FILE}")]
        if len(found) != 1 or not (found[0] / "adapter" / "adapter_model.safetensors").is_file():
            raise ConfigError("MODEL_URI", "not an evolora model (no data/*/adapter)", model_uri)
        return _place(found[0] / "adapter", out)


def export_run(run_id: str, out: str | Path, tracking_uri: str) -> Path:
    out = Path(out)
    _check_out(out)
    if find_run(tracking_uri, run_id) is None:
        raise ConfigError("--run-id", f"no such run in {tracking_uri}", run_id)
    if "adapter" not in artifact_names(tracking_uri, run_id):
        raise ConfigError("--run-id", "run has no adapter artifact (did it finish?)", run_id)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # nothing half-written at `out`
        return _place(download_artifact(tracking_uri, run_id, "adapter", tmp), out)
