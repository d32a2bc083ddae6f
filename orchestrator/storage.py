"""Optuna storages: the default journal file in ``mlruns/``, or any storage URL (SQLite, PostgreSQL, …)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path

import optuna

__all__ = ["default_storage", "open_storage", "storage_lock"]

JOURNAL = "optuna-journal.log"


def default_storage(root: str | Path | None = None) -> str:
    return str((Path(root or Path.cwd()) / "mlruns" / JOURNAL).resolve())


_OPEN: dict[str, optuna.storages.BaseStorage] = {}  # one storage object per URL and process


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """A URL with a database scheme → RDBStorage; anything else is a journal file path (safe for several
    processes on one host). Opened once per process and URL; later calls return the same object."""
    url = url or default_storage()
    if url not in _OPEN:
        _OPEN[url] = _open(url)
    return _OPEN[url]


def _open(url: str) -> optuna.storages.BaseStorage:
    if "://" in url:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(url.removeprefix("journal:")).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


@contextlib.contextmanager
def storage_lock(url: str | None, study: str):
    """An exclusive lock for (storage, study) that makes "check the trial budget, then ask" atomic, so the
    study ends with exactly N trials. On PostgreSQL it is an advisory lock held in the database itself, so it
    is shared by every host and working directory on that storage; a journal file or SQLite database lives
    on one host, where a lock file next to it does the same."""
    url = url or default_storage()
    if url.startswith(("postgresql://", "postgresql+")):
        with _pg_advisory_lock(url, study):
            yield
        return
    key = hashlib.sha256(f"{url}|{study}".encode()).hexdigest()[:16]
    lock_dir = _lock_dir(url)
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _lock_dir(url: str) -> Path:
    """Next to the storage file (journal or SQLite), so every working directory on this host shares it."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).resolve().parent / ".evolora-locks"
    if "://" not in url:
        return Path(url.removeprefix("journal:")).expanduser().resolve().parent / ".evolora-locks"
    return Path.cwd() / "mlruns" / ".locks"


@contextlib.contextmanager
def _pg_advisory_lock(url: str, study: str):
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(f"evolora|{study}".encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()
