"""What is checked before a model loads or anything is written: the stores a command names (an Optuna storage,
an MLflow tracking URI, a registered-model name), the places a run writes to, and the command line's numbers.
Each check raises a :class:`~evolora.evolution.errors.ConfigError` naming the flag or field and the value."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.strict import NAME
from evolora.orchestrator.tracking.urls import sqlite_file

__all__ = [
    "check_storage",
    "check_tracking_uri",
    "check_writable",
    "check_locations",
    "check_model_name",
    "check_experiment",
    "check_timeout",
    "check_ports",
    "check_workers",
]

# the database schemes Optuna's RDBStorage serves (with a driver)
_RDB = (
    "sqlite",
    "postgresql",
    "mysql",
)
_NOT_A_JOURNAL = (
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".parquet",
    ".yaml",
    ".yml",
    ".db",
    ".sqlite",
    ".sqlite3",
    ".npz",
)


def check_storage(url: str | None, flag: str = "--storage") -> None:
    """An Optuna storage: a journal file path, or ``sqlite:///``, ``postgresql://`` or ``mysql://`` with its
    driver installed. A SQLite database or a data file given as a journal path is refused, never written into."""
    if url is None:
        return
    if "://" in url:
        scheme = url.split("://", 1)[0]
        if scheme.split("+", 1)[0] not in _RDB:
            raise ConfigError(
                flag,
                f"unsupported storage scheme {scheme!r} (a journal file path, sqlite:///ABS/PATH, "
                "postgresql://… or mysql://…)",
                url,
            )
        if scheme == "sqlite" and not url.startswith("sqlite:///"):
            raise ConfigError(
                flag, "a SQLite URL is sqlite:///PATH (three slashes, then the file)", url
            )
        try:
            import sqlalchemy

            sqlalchemy.create_engine(url)  # loads the dialect and its driver; connects to nothing
        except (
            Exception
        ) as e:  # NoSuchModuleError, ModuleNotFoundError (no driver), ArgumentError (malformed)
            raise ConfigError(
                flag,
                f"cannot be opened ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                "install the database's driver",
                url,
            ) from None
        return
    path = Path(url.removeprefix("journal:")).expanduser()
    if path.suffix.lower() in _NOT_A_JOURNAL:
        hint = (
            f"; a SQLite database is sqlite:///{path.resolve()}"
            if path.suffix.lower() in (".db", ".sqlite", ".sqlite3")
            else ""
        )
        raise ConfigError(
            flag, f"a journal path, but {path.suffix} names another kind of file{hint}", url
        )
    if path.exists() and not path.is_file():
        raise ConfigError(flag, "is not a file (an Optuna journal is one)", url)
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as fh:
            head = fh.read(64)
        if head.startswith(b"SQLite format 3"):
            raise ConfigError(flag, f"is a SQLite database: write sqlite:///{path.resolve()}", url)
        if not head.lstrip().startswith(b"{"):
            raise ConfigError(
                flag, "is not an Optuna journal file (its first line is not a journal record)", url
            )
    check_writable(path.parent, flag)


def check_tracking_uri(uri: str | None, flag: str = "--tracking-uri") -> None:
    """A tracking URI names its scheme (sqlite:///abs/path/mlflow.db, http://host:5000, postgresql://…): a plain
    path or ``file://`` would make MLflow open a file store it refuses, after the work."""
    if uri is None:
        return
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", uri):
        raise ConfigError(
            flag,
            "a URI with a scheme (sqlite:///ABS/PATH/mlflow.db, http://HOST:PORT), not a path",
            uri,
        )
    if uri.lower().startswith("file:"):
        raise ConfigError(
            flag,
            "MLflow 3 refuses a file store: use a SQLite one (sqlite:///ABS/PATH/mlflow.db)",
            uri,
        )
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:///"):
        raise ConfigError(
            flag, "a SQLite URL is sqlite:///PATH (three slashes, then the file)", uri
        )


def check_writable(path: Path, field: str) -> None:
    """``path`` (a directory, made later if need be) can be written: its nearest existing ancestor is a
    directory this process may write into."""
    p = Path(path).expanduser().absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(
            field,
            f"cannot write there ({p} is {'not a directory' if not p.is_dir() else 'read-only'})",
            str(path),
        )


def check_locations(tracking_uri: str, checkpoint_dir: str | None = None) -> None:
    """Where a run writes — a local tracking store with its artifacts, and checkpoints — is writable, checked
    before the model loads (a read-only disk otherwise fails the run after the work)."""
    db = sqlite_file(tracking_uri)
    if db is not None:
        if db.exists() and not os.access(db, os.W_OK):
            raise ConfigError("--tracking-uri", "the store's database is read-only", tracking_uri)
        check_writable(db.parent, "--tracking-uri")
        if (db.parent / "artifacts").exists():
            check_writable(db.parent / "artifacts", "--tracking-uri")
    if checkpoint_dir is not None:
        check_writable(Path(checkpoint_dir), "--checkpoint-dir")


def check_model_name(name: str | None, flag: str = "--register") -> None:
    """A registered model's name, by the rule the study file's names follow (it becomes a path too)."""
    if name and not re.match(NAME, name):
        raise ConfigError(
            flag,
            "a registered model name is letters, digits, _ . - (starting with a letter or "
            "digit; at most 100 characters)",
            name,
        )


def check_experiment(tracking_uri: str, experiment: str) -> None:
    """The study's MLflow experiment is not a deleted one (MLflow cannot log into it): said before the work."""
    db = sqlite_file(tracking_uri)
    if db is not None and not db.is_file():
        return  # a store not made yet holds no experiment at all
    from evolora.orchestrator.tracking.client import get_client

    exp = get_client(tracking_uri).get_experiment_by_name(experiment)
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise ConfigError(
            "mlflow.experiment",
            f"is deleted in {tracking_uri} (restore it with `mlflow experiments "
            f"restore --experiment-id {exp.experiment_id}`, or name another experiment)",
            experiment,
        )


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError("--timeout", "must be a number of seconds > 0", timeout)


def check_ports(**ports: int) -> None:
    """Ports in 1–65535, all different (``--port 5000 --dashboard-port 5000`` cannot both listen)."""
    for flag, port in ports.items():
        if not 1 <= port <= 65535:
            raise ConfigError(
                f"--{flag.replace('_', '-')}", "must be a port number in 1–65535", port
            )
    if len(set(ports.values())) < len(ports):
        raise ConfigError(
            f"--{list(ports)[-1].replace('_', '-')}",
            "must differ from the other port",
            list(ports.values())[-1],
        )


def check_workers(workers: int, n_trials: int) -> None:
    if workers < 1:
        raise ConfigError("--workers", "must be ≥ 1", workers)
    if workers > n_trials:
        raise ConfigError(
            "--workers",
            f"more workers than trials (--n-trials {n_trials}): the rest would have nothing to run",
            workers,
        )
