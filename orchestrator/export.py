"""Export a run's champion as a stock PEFT adapter directory (loads without evolora installed)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from evolution.errors import ConfigError

from .tracking import get_client

__all__ = ["export_run"]


def export_run(run_id: str, out: str | Path, tracking_uri: str) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("--out", "directory exists and is not empty", str(out))
    client = get_client(tracking_uri)
    try:
        client.get_run(run_id)
    except Exception:
        raise ConfigError("--run-id", f"no such run in {tracking_uri}", run_id) from None
    names = {f.path for f in client.list_artifacts(run_id)}
    if "adapter" not in names:
        raise ConfigError("--run-id", "run has no adapter artifact (did it finish?)", run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # nothing half-written at `out`
        local = Path(client.download_artifacts(run_id, "adapter", tmp))
        if out.exists():
            out.rmdir()
        shutil.move(str(local), str(out))
    return out
