"""Store URLs: the local database file a ``sqlite:///PATH`` URL names (the MLflow store and an Optuna storage
alike), read in one place."""

from __future__ import annotations

from pathlib import Path

__all__ = ["sqlite_file"]

SQLITE = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """``sqlite:///PATH`` → ``Path(PATH)``; any other URL → None."""
    return Path(url[len(SQLITE) :]) if url.startswith(SQLITE) else None
