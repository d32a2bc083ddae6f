"""The MLflow client evolora uses: every call rides out an unreachable or restarting tracking server.

MLflow's client retries refused connections and 5xx answers itself, but not an answer cut off half-way;
:class:`RetryingClient` retries every such transport failure with backoff for up to
``$EVOLORA_MLFLOW_RETRY_SECONDS`` (600 s), each call made safe to repeat (metrics carry fixed timestamps,
which MLflow deduplicates; a run created by an attempt whose answer was lost is found and adopted; a table
append that reached the store is not made twice), and raises :class:`TrackingUnavailable` after that.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import sys
import uuid
from pathlib import Path

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.errors import TrackingUnavailable
from evolora.orchestrator.tracking.retry import call_with_retry
from evolora.orchestrator.tracking.urls import sqlite_file

__all__ = ["RetryingClient", "get_client", "transient", "retry_seconds", "RETRY_ENV", "CREATE_KEY"]

# MLflow's own HTTP retries (7 of them, backing off ×2: minutes of silence inside one call to a server that is
# down) are off unless the user sets them: evolora's retry layer (RetryingClient) is the one that waits, says so
# at each retry and stops at its budget ($EVOLORA_MLFLOW_RETRY_SECONDS).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

RETRY_ENV = "EVOLORA_MLFLOW_RETRY_SECONDS"
# a run's creation token: a retried create_run adopts the run it made
CREATE_KEY = "evolora.create_key"


def retry_seconds() -> float:
    """How long a tracking call rides out an unreachable server: ``$EVOLORA_MLFLOW_RETRY_SECONDS``, 600 s."""
    raw = os.environ.get(RETRY_ENV, "600")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise ConfigError(RETRY_ENV, "must be a number of seconds >= 0", raw)
    return value


def transient(error: BaseException) -> bool:
    """Whether ``error`` is a transport failure worth retrying: a refused, reset, timed-out or cut-off
    connection, or a server that kept answering 5xx through MLflow's own retries. MLflow wraps these in an
    MlflowException whose cause or context holds the original; a refused request (bad parameter, missing
    run) is not transient."""
    import http.client

    import requests
    import urllib3

    kinds = (
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.Timeout,
        requests.exceptions.RetryError,
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
        ConnectionError,
        TimeoutError,
    )
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, kinds):
            return True
        if getattr(e, "error_code", None) == "TEMPORARILY_UNAVAILABLE":
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


class RetryingClient:
    """An ``MlflowClient`` whose every call rides out transport failures (:func:`transient`) with backoff
    (1, 2, 4, … 30 s) for up to ``seconds``, then raises :class:`TrackingUnavailable`. Calls that are not
    safe to repeat as such are made so: ``create_run`` tags the run with a token and, after a lost answer,
    adopts the run holding it; ``log_table`` checks whether the rows already reached the table."""

    def __init__(self, client, tracking_uri: str, seconds: float | None = None) -> None:
        self._client, self.tracking_uri = client, tracking_uri
        self.seconds = retry_seconds() if seconds is None else seconds

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return functools.partial(self._call, name, attr)

    def _call(self, name: str, fn, *args, _landed=None, **kwargs):
        """``fn(*args, **kwargs)``, retried on transient failures. ``_landed()``: before a retry, whether the
        failed attempt took effect after all (its answer lost) → its result, else None."""

        def settled():
            done = _landed()
            return done is not None, done

        def say(e: BaseException, attempt: int, wait: float) -> None:
            print(
                f"evolora: MLflow {name} failed ({str(e).splitlines()[0][:200]}); retry {attempt} in "
                f"{wait:g} s",
                file=sys.stderr,
                flush=True,
            )

        def unavailable(e: BaseException) -> BaseException:
            return TrackingUnavailable(
                f"MLflow tracking store {self.tracking_uri} unreachable for "
                f"{self.seconds:g} s ({name}: {str(e).splitlines()[0][:300]})"
            )

        return call_with_retry(
            lambda: fn(*args, **kwargs),
            transient=transient,
            patience=self.seconds,
            first=1.0,
            cap=30.0,
            settled=settled if _landed is not None else None,
            on_retry=say,
            give_up=unavailable,
        )

    def create_run(
        self, experiment_id: str, run_name: str | None = None, tags: dict | None = None, **kwargs
    ):
        key = uuid.uuid4().hex
        tags = {**(tags or {}), CREATE_KEY: key}

        def landed():
            found = self._client.search_runs(
                [experiment_id], filter_string=f"tags.`{CREATE_KEY}` = '{key}'", max_results=1
            )
            return found[0] if found else None

        return self._call(
            "create_run",
            self._client.create_run,
            experiment_id,
            run_name=run_name,
            tags=tags,
            _landed=landed,
            **kwargs,
        )

    def log_table(self, run_id: str, data, artifact_file: str):
        import tempfile

        rows = json.loads(data.to_json(orient="split", index=False, date_format="iso"))["data"]

        def landed():  # MLflow appends to an existing table: the rows already at its end mean it landed
            if artifact_file not in {
                f.path
                for f in self._client.list_artifacts(
                    run_id, posixpath.dirname(artifact_file) or None
                )
            }:
                return None
            with tempfile.TemporaryDirectory() as tmp:
                path = self._client.download_artifacts(run_id, artifact_file, tmp)
                have = json.loads(Path(path).read_text())["data"]
            # the rows are there; if the lost answer came before MLflow marked the file as a table, the next
            # append marks it (MLflow's own tag is never written by hand)
            return True if rows and have[-len(rows) :] == rows else None

        return self._call(
            "log_table", self._client.log_table, run_id, data, artifact_file, _landed=landed
        )


def get_client(tracking_uri: str) -> RetryingClient:
    from mlflow.tracking import MlflowClient

    db = sqlite_file(tracking_uri)
    if db is not None:
        with _sqlite_store_lock(db):
            # opens (first: creates) the store
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    else:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return RetryingClient(client, tracking_uri)


@contextlib.contextmanager
def _sqlite_store_lock(db: Path):
    """A lock next to a SQLite store, held while a process opens it: MLflow creates and migrates the tables
    when a process first opens a store, and two processes doing that at once on a fresh store race
    ("duplicate column name"). Once open, MLflow keeps the store for the process."""
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.create.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
