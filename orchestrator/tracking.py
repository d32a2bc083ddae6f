"""MLflow tracking as an observer. The only module that talks to MLflow.

Default store: a SQLite database inside ``mlruns/`` (MLflow 3 refuses a plain file store) with artifacts
beside it. Per-generation metrics are buffered and flushed with one ``log_batch`` every few generations
(each logging call costs ~5 ms on SQLite whatever its size).

A tracking server may restart, drop a connection or die mid-answer. MLflow's client retries refused
connections and 5xx answers itself, but not an answer cut off half-way; :class:`RetryingClient` retries
every such transport failure with backoff for up to ``$EVOLORA_MLFLOW_RETRY_SECONDS`` (600 s), each call
made safe to repeat (metrics carry fixed timestamps, which MLflow deduplicates; a run created by an
attempt whose answer was lost is found and adopted; a table append that reached the store is not made
twice), and raises :class:`TrackingUnavailable` after that.
"""

from __future__ import annotations

import contextlib

import functools
import json
import os
import platform
import posixpath
import sys
import time
import traceback
import uuid
import warnings
from pathlib import Path
from typing import Any

from evolution.errors import ConfigError
from evolution.observers import Observer

from .errors import TrackingUnavailable

__all__ = ["default_tracking_uri", "MlflowTracker", "RetryingClient", "transient", "retry_seconds", "flatten",
           "get_client", "get_or_create_experiment", "log_model", "register_champion", "download_model", "CHAMPION_ALIAS", "LOADER_MODULE"]

# MLflow's own HTTP retries (7 of them, backing off ×2: minutes of silence inside one call to a server that is
# down) are off unless the user sets them: evolora's retry layer (RetryingClient) is the one that waits, says so
# at each retry and stops at its budget ($EVOLORA_MLFLOW_RETRY_SECONDS).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

CHAMPION_ALIAS = "champion"
LOADER_MODULE = "fitness.serving"  # MLflow imports it from the installed evolora package: no pickle, no code in artifacts

MLRUNS = "mlruns"
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOT_CURVES = {"gen", "champion_id", "nevals"}  # ids and counts: in logbook.json, not drawn as charts


def default_tracking_uri(root: str | Path | None = None) -> str:
    base = Path(root or Path.cwd()) / MLRUNS
    return f"sqlite:///{base.resolve() / 'mlflow.db'}"


def existing_tracking_uri(uri: str | None) -> str | None:
    """The tracking URI a reading command (``export``, ``lineage``) uses: nothing is created. A SQLite store
    the user named that is not there is a ConfigError; the default one not written yet → None."""
    resolved = uri or default_tracking_uri()
    if resolved.startswith("sqlite:///") and not Path(resolved[len("sqlite:///"):]).is_file():
        if uri is None:
            return None
        raise ConfigError("--tracking-uri", "no MLflow store there (nothing is created by a command that reads)", uri)
    return resolved


def _artifact_root(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "artifacts").as_uri()
    return None


RETRY_ENV = "EVOLORA_MLFLOW_RETRY_SECONDS"
CREATE_KEY = "evolora.create_key"  # a run's creation token: a retried create_run adopts the run it made


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

    kinds = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
             requests.exceptions.Timeout, requests.exceptions.RetryError, urllib3.exceptions.HTTPError,
             http.client.HTTPException, ConnectionError, TimeoutError)
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
        deadline, delay, attempt = time.monotonic() + self.seconds, 1.0, 0
        while True:
            try:
                if attempt and _landed is not None:
                    done = _landed()
                    if done is not None:
                        return done
                return fn(*args, **kwargs)
            except Exception as e:
                if not transient(e):
                    raise
                if time.monotonic() + delay > deadline:
                    raise TrackingUnavailable(f"MLflow tracking store {self.tracking_uri} unreachable for "
                                              f"{self.seconds:g} s ({name}: {str(e).splitlines()[0][:300]})") from e
                attempt += 1
                print(f"evolora: MLflow {name} failed ({str(e).splitlines()[0][:200]}); retry {attempt} in "
                      f"{delay:g} s", file=sys.stderr, flush=True)
                time.sleep(delay)
                delay = min(2 * delay, 30.0)

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict | None = None, **kwargs):
        key = uuid.uuid4().hex
        tags = {**(tags or {}), CREATE_KEY: key}

        def landed():
            found = self._client.search_runs([experiment_id], filter_string=f"tags.`{CREATE_KEY}` = '{key}'",
                                             max_results=1)
            return found[0] if found else None

        return self._call("create_run", self._client.create_run, experiment_id, run_name=run_name, tags=tags,
                          _landed=landed, **kwargs)

    def log_table(self, run_id: str, data, artifact_file: str):
        import tempfile

        rows = json.loads(data.to_json(orient="split", index=False, date_format="iso"))["data"]

        def landed():  # MLflow appends to an existing table: the rows already at its end mean it landed
            if artifact_file not in {f.path for f in self._client.list_artifacts(run_id, posixpath.dirname(artifact_file) or None)}:
                return None
            with tempfile.TemporaryDirectory() as tmp:
                path = self._client.download_artifacts(run_id, artifact_file, tmp)
                have = json.loads(Path(path).read_text())["data"]
            # the rows are there; if the lost answer came before MLflow marked the file as a table, the next
            # append marks it (MLflow's own tag is never written by hand)
            return True if rows and have[-len(rows):] == rows else None

        return self._call("log_table", self._client.log_table, run_id, data, artifact_file, _landed=landed)


def get_client(tracking_uri: str) -> RetryingClient:
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        with _sqlite_store_lock(Path(tracking_uri[len("sqlite:///"):])):
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)  # opens (first: creates) the store
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


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, created on first use and marked as model training, so MLflow's UI opens it on
    the runs table and metric charts (not the GenAI traces view)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        root = _artifact_root(tracking_uri)
        try:
            exp_id = client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None,
                                              tags={EXPERIMENT_KIND: MODEL_TRAINING})
            return exp_id
        except Exception:  # another process created it first
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
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
                 run_id: str | None = None, extra_params: dict[str, Any] | None = None,
                 system_metrics: bool = False, attach: bool = False) -> None:
        """``run_id``: resume that run (status back to RUNNING); with ``attach``, only log into it."""
        from mlflow.entities import Param

        self.client = get_client(tracking_uri)
        self._monitor = None
        self._system_metrics = system_metrics
        self.tracking_uri = tracking_uri
        self.flush_every = flush_every
        self._buffer: list = []
        self._since_flush = 0
        self._logged_upto = -1  # generations already in the run (a resumed run never logs a step twice)
        if run_id is not None and attach:  # log into a run another process owns (a sweep's parent run)
            self.run_id = run_id
            return
        if run_id is not None:  # resume an existing run (a retried trial)
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            steps = [m.step for m in self.client.get_metric_history(run_id, "fit_best")]
            self._logged_upto = max(steps, default=-1)
            self._start_monitor(resume=True)
            return
        exp_id = get_or_create_experiment(self.client, experiment, tracking_uri)
        all_tags = {**(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(exp_id, run_name=run_name, tags=all_tags)
        self.run_id = run.info.run_id
        from .config import compared_params

        merged = {**flatten(compared_params(params)), **{k: str(v) for k, v in (extra_params or {}).items()}}
        flat = [Param(k, v[:6000]) for k, v in merged.items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(self.run_id, params=flat[i : i + 100])
        self._start_monitor(resume=False)

    def _start_monitor(self, resume: bool) -> None:
        """CPU, memory (and GPU when there is one) as ``system/*`` metrics every 10 s, from MLflow's monitor."""
        if not self._system_metrics:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(self.run_id, resume_logging=resume, tracking_uri=self.tracking_uri)
        self._monitor.start()

    @property
    def logged_upto(self) -> int:
        """The last generation already in the run (-1: none): a resumed run logs only what comes after."""
        return self._logged_upto

    def close(self) -> None:
        """Stop background logging without touching the run (a fenced trial's run belongs to its retry)."""
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None

    def log_datasets(self, splits: dict[str, tuple[Any, str]]) -> None:
        """The data as run inputs: {context: (DataFrame, source path)} → ``mlflow.data`` datasets with their
        digest, each tagged with its split (train / validation / test)."""
        import mlflow.data
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = []
        for context, (df, source) in splits.items():
            with warnings.catch_warnings():  # "source can be interpreted in multiple ways": both are local files
                warnings.simplefilter("ignore", UserWarning)
                ds = mlflow.data.from_pandas(df, source=str(Path(str(source)).resolve()),
                                             name=f"{Path(str(source)).stem}:{context}",
                                             targets="score" if "score" in df.columns else None)
            d = ds.to_dict()  # the public record of a dataset → the entity a client logs
            entity = Dataset(name=d["name"], digest=d["digest"], source_type=d["source_type"], source=d["source"],
                             schema=d.get("schema"), profile=d.get("profile"))
            inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
        for attempt in range(4):  # two workers logging the same dataset at once race on the store's unique
            try:                  # key; the loser finds it registered on the next try
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except Exception as e:  # the data's record is a convenience: it never fails a trial
                if attempt == 3:
                    warnings.warn(f"could not log the dataset inputs of run {self.run_id}: {e}", stacklevel=2)
                else:
                    time.sleep(0.2 * (attempt + 1))

    # ---- observer hooks -----------------------------------------------------------------------------
    def on_generation(self, row: dict) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        step = int(row["gen"])
        if step <= self._logged_upto:  # logged by the attempt that was killed after flushing, before its checkpoint
            return
        for k, v in row.items():
            if k not in NOT_CURVES and isinstance(v, (int, float)) and v == v:  # skip NaN
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
    def log_metric(self, key: str, value: float, step: int) -> None:
        self.client.log_metric(self.run_id, key, float(value), step=step)

    def log_metrics(self, metrics: dict[str, float], step: int = 0, model_uri: str | None = None,
                    timestamp: int | None = None) -> None:
        """Metrics of the run at ``step``; with ``model_uri`` (a logged model, ``models:/m-…``) also the model's,
        so its page in the UI and the registry's versions show them. Logged again with the same ``timestamp``,
        a metric the run already holds is not repeated."""
        from mlflow.entities import Metric

        ts = timestamp if timestamp is not None else int(time.time() * 1000)
        model_id = model_uri[len("models:/"):] if model_uri and model_uri.startswith("models:/m-") else None
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), ts, step, model_id=model_id)
                                                    for k, v in metrics.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_table(self, rows: list[dict], artifact_file: str) -> None:
        """Rows as an MLflow table artifact (appended to when the file exists): shown as a table in the UI."""
        import pandas as pd

        self.client.log_table(self.run_id, pd.DataFrame(rows), artifact_file)

    def log_figure(self, fig, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, fig, artifact_file, save_kwargs={"dpi": 110})

    def log_image(self, fig, key: str, step: int) -> None:
        """A matplotlib figure as the image ``key`` at ``step``: MLflow's UI shows it among the run's metric
        charts (a slider over the steps; at one step, the latest picture logged there)."""
        from PIL import Image

        fig.canvas.draw()
        image = Image.frombuffer("RGBA", fig.canvas.get_width_height(physical=True), fig.canvas.buffer_rgba())
        self.client.log_image(self.run_id, image.convert("RGB"), key=key, step=int(step), synchronous=True)

    def finish(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        try:
            self.close()
            self.flush()
            if error is not None:  # an interruption is not an error: a resumed run that completes has no error.txt
                name = "interrupted.txt" if status == "KILLED" else "error.txt"
                self.log_text("".join(traceback.format_exception(error)), name)
        finally:
            self.client.set_terminated(self.run_id, status=status)


# ---- models and the registry ------------------------------------------------------------------------
def _signature(kind: str, max_new_tokens: int):
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    if kind == "encoder":
        return ModelSignature(inputs=Schema([ColSpec("string", "sentence1"), ColSpec("string", "sentence2")]),
                              outputs=Schema([ColSpec("double", "similarity")]))
    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt", required=False), ColSpec("string", "text", required=False)]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("mode", "string", "generate"),
                            ParamSpec("max_new_tokens", "long", int(max_new_tokens))]))


EXAMPLES = {
    "encoder": {"sentence1": ["A man is playing a guitar.", "A woman is slicing an onion."],
                "sentence2": ["A person plays the guitar.", "A dog runs across a field."]},
    "causal": {"prompt": ["The weather today is", "In the news:"]},
}


def _requirements(base_ref: dict) -> list[str]:
    import importlib.metadata as md

    reqs = []
    for pkg in ("evolora", "torch", "transformers", "peft", "safetensors", "pandas", "numpy", "scipy",
                *([base_ref["package"]] if "package" in base_ref else [])):
        try:
            reqs.append(f"{pkg}=={md.version(pkg)}")
        except md.PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def log_model(tracking_uri: str, run_id: str, model_dir: Path, meta: dict, step: int = 0) -> str:
    """Log an evolora model directory (:func:`fitness.serving.write_model_dir`) as the run's MLflow model,
    pyfunc flavour with ``fitness.serving`` as loader module, signature and input example. → model URI."""
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    kind = meta["kind"]
    example = pd.DataFrame(EXAMPLES[kind])

    def log():
        with mlflow.start_run(run_id=run_id, log_system_metrics=False):  # on exit the run reads FINISHED until finish() sets its status
            return mlflow.pyfunc.log_model(
                name="model", loader_module=LOADER_MODULE, data_path=str(model_dir),
                signature=_signature(kind, meta["max_new_tokens"]), input_example=example,
                pip_requirements=_requirements(meta["base"]), step=step,
                metadata={"evolora": {"task": meta["task"], "base": meta["base"]}})

    return get_client(tracking_uri)._call("log_model", log).model_uri


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def register_champion(tracking_uri: str, name: str, model_uri: str, run_id: str, value: float,
                      direction: str = "maximize", tags: dict[str, Any] | None = None,
                      force: bool = False) -> tuple[str | None, bool]:
    """Register ``model_uri`` as a new version of ``name`` and point the ``champion`` alias at it if its
    ``value`` (validation) beats the version the alias points at (or there is none). A model that does
    not beat the champion is not registered unless ``force``. → (version or None, alias moved)."""
    from mlflow.exceptions import MlflowException

    client = get_client(tracking_uri)
    try:
        client.create_registered_model(name, description="evolora champions: each version a LoRA adapter evolved "
                                       "on a frozen base; the alias `champion` points at the best on validation.")
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    current = None
    try:
        current = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        pass
    cur_val = float(current.tags["val"]) if current is not None and "val" in current.tags else None
    better = cur_val is None or _better(value, cur_val, direction)
    if not (better or force):
        return None, False
    model_id = model_uri[len("models:/"):] if model_uri.startswith("models:/m-") else None  # a logged model
    version = client.create_model_version(name, source=model_uri, run_id=run_id, model_id=model_id,
                                          tags={"val": repr(float(value)), **{k: str(v) for k, v in (tags or {}).items()}})
    if better:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    return str(version.version), better


def _registered_source(tracking_uri: str, model_uri: str) -> str:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` → the version's download URI, read from this
    store's own registry (MLflow's ``models:/`` resolution reads a process-wide registry URI instead, which
    evolora never sets). Any other URI (``runs:/…``, a logged model ``models:/m-…``) is returned as it is."""
    from mlflow.exceptions import MlflowException

    if not model_uri.startswith("models:/") or model_uri.startswith("models:/m-"):
        return model_uri
    ref = model_uri[len("models:/"):].strip("/")
    client = get_client(tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        elif "/" in ref:
            name, version = ref.split("/", 1)
            if not version.isdigit():
                raise LookupError(f"{version!r} is not a version number (stages are not used; name@alias is)")
        else:
            raise LookupError("expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return client.get_model_version_download_uri(name, version)
    except MlflowException as e:
        raise LookupError(e.message.splitlines()[0]) from None


def download_model(tracking_uri: str, model_uri: str, dst: Path) -> Path:
    """A registered or logged model (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/…``) → its
    local directory (the one holding ``MLmodel``). LookupError (MLflow's first line) if it cannot be found."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    source = _registered_source(tracking_uri, model_uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst),
                                                        tracking_uri=tracking_uri))
    except MlflowException as e:
        raise LookupError(e.message.splitlines()[0]) from None


# ---- reading runs back --------------------------------------------------------------------------------
def find_run(tracking_uri: str, run_id: str):
    """The run, or None when this store has no such run."""
    try:
        return get_client(tracking_uri).get_run(run_id)
    except TrackingUnavailable:
        raise
    except Exception:
        return None


def resume_run(tracking_uri: str, run_id: str) -> bool:
    """Mark an existing run RUNNING again (a parent run a later sweep command goes on with); False if this
    store has no such run."""
    if find_run(tracking_uri, run_id) is None:
        return False
    get_client(tracking_uri).update_run(run_id, status="RUNNING")
    return True


def artifact_names(tracking_uri: str, run_id: str) -> set[str]:
    return {f.path for f in get_client(tracking_uri).list_artifacts(run_id)}


def download_artifact(tracking_uri: str, run_id: str, path: str, dst: str | Path) -> Path:
    return Path(get_client(tracking_uri).download_artifacts(run_id, path, str(dst)))


def experiment_names(tracking_uri: str) -> list[tuple[str, str]]:
    """(id, name) of every experiment but MLflow's empty Default one."""
    return [(e.experiment_id, e.name) for e in get_client(tracking_uri).search_experiments() if e.name != "Default"]
