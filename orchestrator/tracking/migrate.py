"""Stores written by an earlier evolora, brought up to date in place: an MLflow model names the module MLflow
imports to load it (``loader_module`` in its ``MLmodel`` file), and evolora's modules now live under the one
``evolora`` namespace (``fitness.serving`` is ``evolora.fitness.serving``). ``evolora migrate`` rewrites those
names in every model of a store whose artifacts are local files; anything else in the file is kept as it was."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

from evolora.orchestrator.tracking.client import get_client

__all__ = ["MOVED_MODULES", "migrate_store", "migrate_mlmodel"]

MOVED_MODULES = {
    "fitness.serving": "evolora.fitness.serving"
}  # what a stored model may name → where it is now


def migrate_mlmodel(path: Path) -> bool:
    """Rewrite one ``MLmodel`` file's loader module if it names a moved module (atomically) → whether it did."""
    text = path.read_text(encoding="utf-8")
    conf = yaml.safe_load(text) or {}
    pyfunc = (conf.get("flavors") or {}).get("python_function") or {}
    old = pyfunc.get("loader_module")
    if old not in MOVED_MODULES:
        return False
    line = f"loader_module: {old}\n"
    # the file is not laid out as MLflow writes it: leave it for a person to read
    if text.count(line) != 1:
        raise ValueError(f"{path}: loader_module {old!r} is not on a line of its own")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".MLmodel.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text.replace(line, f"loader_module: {MOVED_MODULES[old]}\n"))
    os.replace(tmp, path)
    return True


def _local_dir(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    return None


def migrate_store(tracking_uri: str) -> tuple[list[Path], list[str]]:
    """Every experiment's artifacts (runs and logged models) → (the MLmodel files rewritten, the artifact
    locations that are not local files and were left as they are)."""
    from mlflow.entities import ViewType

    client = get_client(tracking_uri)
    rewritten, remote = [], []
    for exp in client.search_experiments(view_type=ViewType.ALL):
        root = _local_dir(exp.artifact_location)
        if root is None:
            remote.append(exp.artifact_location)
            continue
        if root.is_dir():
            rewritten += [p for p in sorted(root.rglob("MLmodel")) if migrate_mlmodel(p)]
    return rewritten, remote
