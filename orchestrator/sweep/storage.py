"""Optuna storages: the default journal file in ``mlruns/``, or any storage URL (SQLite, PostgreSQL, …)."""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from evolora.orchestrator.tracking.retry import call_with_retry
from evolora.orchestrator.tracking.urls import sqlite_file

__all__ = [
    "ATTR",
    "default_storage",
    "checkpoints_beside",
    "STORAGE_ENV",
    "open_storage",
    "open_existing_storage",
    "storage_lock",
    "ResilientStorage",
    "PATIENCE",
]

JOURNAL = "optuna-journal.log"
ATTR = "evolora:"  # prefix of evolora's study and trial user attributes in a storage
PATIENCE = 300.0  # seconds a database may stay unreachable before a storage call gives up


STORAGE_ENV = "EVOLORA_STORAGE"  # the user's default Optuna storage; a command's --storage wins


def default_storage(root: str | Path | None = None) -> str:
    """The Optuna storage a command uses without ``--storage``: ``$EVOLORA_STORAGE`` (a journal file path or
    a database URL), else ``<root or cwd>/mlruns/optuna-journal.log``."""
    if root is None and (env := os.environ.get(STORAGE_ENV)):
        return env
    return str((Path(root or Path.cwd()) / "mlruns" / JOURNAL).resolve())


def checkpoints_beside(storage: str) -> Path:
    """Where a sweep keeps its trials' checkpoints by default: a ``checkpoints`` folder beside a storage kept
    in a local file (a journal, SQLite), so that a sweep's state stays in one place; for a database server,
    ``./mlruns/checkpoints`` (several hosts must pass a shared ``--checkpoint-dir``)."""
    path = _local_file(storage)
    return (path.parent if path is not None else Path.cwd() / "mlruns") / "checkpoints"


_OPEN: dict[str, optuna.storages.BaseStorage] = {}  # one storage object per URL and process


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """A URL with a database scheme → RDBStorage; anything else is a journal file path (safe for several
    processes on one host). Opened once per process and URL; later calls return the same object."""
    url = url or default_storage()
    if url not in _OPEN:
        _OPEN[url] = _open(url)
    return _OPEN[url]


def _local_file(url: str) -> Path | None:
    """The file a storage URL keeps its data in on this host (a journal file, a SQLite database), or None."""
    if (db := sqlite_file(url)) is not None:
        return db
    if "://" in url:
        return None
    return Path(url.removeprefix("journal:")).expanduser()


def open_existing_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """A storage to read (``studies``, ``export --trial``, ``reproduce``): nothing is created. A storage the
    user named that is not there is a ConfigError (a typo would otherwise leave an empty store behind);
    the default one not written yet → None (no sweep has run here)."""
    from evolora.evolution.errors import ConfigError

    path = _local_file(url or default_storage())
    if path is not None and not path.is_file():
        if url is None:
            return None
        raise ConfigError(
            "--storage", "no Optuna storage there (nothing is created by a command that reads)", url
        )
    return open_storage(url)


def _open(url: str) -> optuna.storages.BaseStorage:
    if "://" in url:
        if (db := sqlite_file(url)) is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        kwargs = None if url.startswith("sqlite") else {"pool_pre_ping": True}
        # hosts starting at once on a fresh database
        if url.startswith(("postgresql://", "postgresql+")):
            # would race creating Optuna's tables and types
            with _pg_advisory_lock(url, "<schema>"):
                return ResilientStorage(optuna.storages.RDBStorage(url, engine_kwargs=kwargs), url)
        return ResilientStorage(optuna.storages.RDBStorage(url, engine_kwargs=kwargs), url)
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
    if (db := sqlite_file(url)) is not None:
        return db.resolve().parent / ".evolora-locks"
    if "://" not in url:
        return Path(url.removeprefix("journal:")).expanduser().resolve().parent / ".evolora-locks"
    return Path.cwd() / "mlruns" / ".locks"


@contextlib.contextmanager
def _pg_advisory_lock(url: str, study: str, patience: float = PATIENCE):
    """``pg_advisory_lock`` on a connection of its own. Taking it waits out a database restart (as
    :class:`ResilientStorage` does); if the connection is lost while it is held, the server has already
    released the lock with the session, so releasing it is skipped rather than failing the caller."""
    import sqlalchemy

    key = int.from_bytes(
        hashlib.sha256(f"evolora|{study}".encode()).digest()[:8], "big", signed=True
    )
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        conn = retry_transient(lambda: _locked(engine, key), "pg_advisory_lock", patience)
        try:
            yield
        finally:
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception as e:
                if not _transient(e):
                    raise
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
    finally:
        engine.dispose()


def _locked(engine, key: int):
    import sqlalchemy

    conn = engine.connect()
    try:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
    except BaseException:
        with contextlib.suppress(Exception):
            conn.close()
        raise
    return conn


# ---- a database that goes away and comes back -------------------------------------------------------
def _transient(e: BaseException) -> bool:
    """A lost or refused connection (server restarting, network blip), as opposed to a real error."""
    import sqlalchemy.exc as sa

    cause = e.__cause__ if isinstance(e, StorageInternalError) else e
    # the session went on after its connection failed (Optuna's
    if isinstance(cause, sa.PendingRollbackError):
        # get_all_trials queries again)
        return cause.__context__ is not None and _transient(cause.__context__)
    orig = getattr(cause, "orig", None)
    # a local file: only a busy database passes; anything else is real
    if type(orig).__module__ == "sqlite3":
        return "locked" in str(orig) or "busy" in str(orig)
    return isinstance(cause, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)) or (
        isinstance(cause, sa.DBAPIError) and cause.connection_invalidated
    )


def retry_transient(fn, what: str, patience: float = PATIENCE, after_loss=None) -> Any:
    """``fn()`` until it does not fail on a lost or refused database connection (waiting 0.2 s, doubling to
    5 s, for up to ``patience`` seconds); other errors are raised at once. ``after_loss()``, when given, runs
    once the database answers again after a loss and may settle the call by returning ``(True, result)``."""

    def say(e: BaseException, attempt: int, wait: float) -> None:
        if attempt == 1:
            print(
                f"evolora: the Optuna storage database is unreachable ({what}: "
                f"{str(e.__cause__ or e).strip().splitlines()[0][:160]}); retrying for up to {patience:.0f} s",
                file=sys.stderr,
            )

    def recovered() -> None:
        print(
            f"evolora: the Optuna storage database answers again ({what} went through)",
            file=sys.stderr,
        )

    return call_with_retry(
        fn,
        transient=_transient,
        patience=patience,
        first=0.2,
        cap=5.0,
        settled=after_loss,
        on_retry=say,
        on_recovered=recovered,
    )


class _Delegating(BaseStorage):
    """Every storage method forwards to ``self._call(name, ...)``."""

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


def _forward(name: str):
    def method(self, *args, **kwargs):
        return self._call(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


for _name in (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "remove_session",
):
    setattr(_Delegating, _name, _forward(_name))
abc.update_abstractmethods(_Delegating)


class ResilientStorage(_Delegating):
    """An RDB storage that rides out its database going away: a call that fails on a lost or refused
    connection waits and retries until the database answers again (:func:`retry_transient`). Optuna's
    RDBStorage raises on the first lost connection (``pool_pre_ping`` only replaces connections that died
    while idle in the pool).

    Reads and attribute/param/intermediate-value writes are idempotent and simply retried. The two writes
    that are not are checked after a lost connection, for a commit that landed although its answer was lost:
    ``create_new_trial`` (did the study gain a trial?) and ``set_trial_state_values`` (is the trial already
    in that state, with those values?). Both checks are exact when the caller holds the study's claim lock
    (``storage_lock``), as evolora's workers do when they create, claim and retry trials."""

    def __init__(self, inner: BaseStorage, url: str = "", patience: float = PATIENCE) -> None:
        self._inner, self._url, self.patience = inner, url, patience

    def __getattr__(self, name: str) -> Any:  # anything else the wrapped storage offers
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._retry(lambda: getattr(self._inner, name)(*args, **kwargs), name)

    def _retry(self, fn, what: str, after_loss=None) -> Any:
        return retry_transient(fn, what, self.patience, after_loss)

    def create_new_trial(self, study_id: int, template_trial=None) -> int:
        before = self._call("get_n_trials", study_id)

        def landed():  # the study gained a trial although the answer was lost: that is ours
            n = self._inner.get_n_trials(study_id)
            return (
                (True, self._inner.get_trial_id_from_study_id_trial_number(study_id, before))
                if n > before
                else (False, None)
            )

        return self._retry(
            lambda: self._inner.create_new_trial(study_id, template_trial),
            "create_new_trial",
            landed,
        )

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        def landed():
            t = self._inner.get_trial(trial_id)
            if t.state != state:
                return False, None
            if state == TrialState.RUNNING:  # claimed from WAITING under the claim lock: by us
                return True, True
            return (list(values) == list(t.values or []) if values is not None else True), True

        return self._retry(
            lambda: self._inner.set_trial_state_values(trial_id, state, values),
            "set_trial_state_values",
            landed,
        )
