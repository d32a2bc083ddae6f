"""MLflow tracking as an observer: a run per trial, its params, curves, datasets, tables and pictures, and
runs read back. With :mod:`.client` (every call retried) and :mod:`.models` (the champion as a model, the
Model Registry), in ``tracking/``: the only modules that talk to MLflow.

Default store: a SQLite database inside ``mlruns/`` (MLflow 3 refuses a plain file store) with artifacts
beside it. Per-generation metrics are buffered and flushed with one ``log_batch`` every few generations
(a logging call costs about the same on SQLite whatever its size).

Every call goes through :class:`~evolora.orchestrator.tracking.client.RetryingClient`: a tracking server that restarts,
drops a connection or dies mid-answer costs a wait, not the run.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from evolora.evolution.errors import ConfigError, EvoloraWarning
from evolora.evolution.observers import Observer
from evolora.orchestrator.errors import TrackingUnavailable
from evolora.orchestrator.tracking.client import get_client
from evolora.orchestrator.tracking.params import compared_params, flatten, library_versions
from evolora.orchestrator.tracking.urls import sqlite_file

__all__ = [
    "default_tracking_uri",
    "existing_tracking_uri",
    "MlflowTracker",
    "flatten",
    "compared_params",
    "get_or_create_experiment",
    "library_versions",
    "find_run",
    "resume_run",
    "artifact_names",
    "download_artifact",
    "experiment_names",
]


MLRUNS = "mlruns"
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOT_CURVES = {
    "gen",
    "champion_id",
    "nevals",
}  # ids and counts: in logbook.json, not drawn as charts


# the user's $MLFLOW_TRACKING_URI, read once when evolora is imported: MLflow's set_tracking_uri writes that
# variable itself (for its subprocesses), so read later it would name whichever store this process used last
_USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or None


def default_tracking_uri(root: str | Path | None = None) -> str:
    """The store a command uses when ``--tracking-uri`` is not given: the user's ``$MLFLOW_TRACKING_URI`` if
    it was set when evolora was imported, else the SQLite store in ``./mlruns/`` (or in ``root / mlruns``)."""
    if root is None and _USER_TRACKING_URI:
        return _USER_TRACKING_URI
    base = Path(root or Path.cwd()) / MLRUNS
    return f"sqlite:///{base.resolve() / 'mlflow.db'}"


def existing_tracking_uri(uri: str | None) -> str | None:
    """The tracking URI a reading command (``export``, ``lineage``) uses: nothing is created. A SQLite store
    the user named that is not there is a ConfigError; the default one not written yet → None."""
    resolved = uri or default_tracking_uri()
    db = sqlite_file(resolved)
    if db is not None and not db.is_file():
        if uri is None:
            return None
        raise ConfigError(
            "--tracking-uri",
            "no MLflow store there (nothing is created by a command that reads)",
            uri,
        )
    return resolved


def artifact_root(tracking_uri: str) -> str | None:
    """Where a local SQLite store keeps its artifacts (``artifacts/`` beside the database); None elsewhere."""
    db = sqlite_file(tracking_uri)
    return (db.parent / "artifacts").as_uri() if db is not None else None


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, created on first use and marked as model training, so MLflow's UI opens it on
    the runs table and metric charts (not the GenAI traces view)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        root = artifact_root(tracking_uri)
        try:
            exp_id = client.create_experiment(
                name,
                artifact_location=f"{root}/{name}" if root else None,
                tags={EXPERIMENT_KIND: MODEL_TRAINING},
            )
            return exp_id
        except Exception:  # another process created it first
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    return exp.experiment_id


NOTE = "mlflow.note.content"  # the run's description in the MLflow UI
DESCRIPTION_MARK = (
    "<!-- evolora -->"  # a description evolora wrote (and may rewrite on a resumed run)
)


class MlflowTracker(Observer):
    """One MLflow run: params at start, buffered per-generation metrics, artifacts and status at the end."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        flush_every: int = 5,
        run_id: str | None = None,
        extra_params: dict[str, Any] | None = None,
        system_metrics: bool = False,
        attach: bool = False,
    ) -> None:
        """``run_id``: resume that run (status back to RUNNING); with ``attach``, only log into it."""
        from mlflow.entities import Param

        self.client = get_client(tracking_uri)
        self._monitor = None
        self._system_metrics = system_metrics
        self.tracking_uri = tracking_uri
        self.flush_every = flush_every
        self._buffer: list = []
        self._since_flush = 0
        # generations already in the run (a resumed run never logs a step twice)
        self._logged_upto = -1
        # log into a run another process owns (a sweep's parent run)
        if run_id is not None and attach:
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
        merged = {
            **flatten(compared_params(params)),
            **{k: str(v) for k, v in (extra_params or {}).items()},
        }
        flat = [Param(k, v[:6000]) for k, v in merged.items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(self.run_id, params=flat[i : i + 100])
        self._start_monitor(resume=False)

    def _start_monitor(self, resume: bool) -> None:
        """CPU, memory (and GPU when there is one) as ``system/*`` metrics every 10 s, from MLflow's monitor."""
        if not self._system_metrics:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._monitor = SystemMetricsMonitor(
            self.run_id, resume_logging=resume, tracking_uri=self.tracking_uri
        )
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
            # "source can be interpreted in multiple ways": both are local files
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ds = mlflow.data.from_pandas(
                    df,
                    source=str(Path(str(source)).resolve()),
                    name=f"{Path(str(source)).stem}:{context}",
                    targets="score" if "score" in df.columns else None,
                )
            d = ds.to_dict()  # the public record of a dataset → the entity a client logs
            entity = Dataset(
                name=d["name"],
                digest=d["digest"],
                source_type=d["source_type"],
                source=d["source"],
                schema=d.get("schema"),
                profile=d.get("profile"),
            )
            inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
        # two workers logging the same dataset at once race on the store's unique
        for attempt in range(4):
            try:  # key; the loser finds it registered on the next try
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except Exception as e:  # the data's record is a convenience: it never fails a trial
                if attempt == 3:
                    warnings.warn(
                        f"could not log the dataset inputs of run {self.run_id}: {e}",
                        EvoloraWarning,
                        stacklevel=2,
                    )
                else:
                    time.sleep(0.2 * (attempt + 1))

    # ---- observer hooks -----------------------------------------------------------------------------
    def on_generation(self, row: dict) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        step = int(row["gen"])
        # logged by the attempt that was killed after flushing, before its checkpoint
        if step <= self._logged_upto:
            return
        for k, v in row.items():
            if k not in NOT_CURVES and isinstance(v, (int, float)) and v == v:  # skip NaN
                self._buffer.append(Metric(k, float(v), ts, step))
        self._since_flush += 1
        if self._since_flush >= self.flush_every:
            self.flush()

    def on_checkpoint(self, state: dict) -> None:
        self.flush()  # what a checkpoint holds is logged: a resumed run neither loses nor repeats metrics

    def delete_tag(self, key: str) -> None:
        """Remove a tag from the run (none there: nothing happens)."""
        if key in self.client.get_run(self.run_id).data.tags:
            self.client.delete_tag(self.run_id, key)

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

    def log_metrics(
        self,
        metrics: dict[str, float],
        step: int = 0,
        model_uri: str | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Metrics of the run at ``step``; with ``model_uri`` (a logged model, ``models:/m-…``) also the model's,
        so its page in the UI and the registry's versions show them. Logged again with the same ``timestamp``,
        a metric the run already holds is not repeated."""
        from mlflow.entities import Metric

        ts = timestamp if timestamp is not None else int(time.time() * 1000)
        model_id = (
            model_uri[len("models:/") :]
            if model_uri and model_uri.startswith("models:/m-")
            else None
        )
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), ts, step, model_id=model_id) for k, v in metrics.items()],
        )

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

    def describe(self, markdown: str) -> None:
        """The run's description (``mlflow.note.content``, Markdown at the top of its page in the MLflow UI),
        unless someone wrote one that evolora did not."""
        tags = self.client.get_run(self.run_id).data.tags
        mine = tags.get(NOTE, "").startswith(DESCRIPTION_MARK)
        if NOTE not in tags or mine:
            self.client.set_tag(self.run_id, NOTE, f"{DESCRIPTION_MARK}\n{markdown}")

    def log_figure(self, fig, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, fig, artifact_file, save_kwargs={"dpi": 110})

    def log_image(self, fig, key: str, step: int) -> None:
        """A matplotlib figure as the image ``key`` at ``step``: MLflow's UI shows it among the run's metric
        charts (a slider over the steps; at one step, the latest picture logged there)."""
        from PIL import Image

        fig.canvas.draw()
        image = Image.frombuffer(
            "RGBA", fig.canvas.get_width_height(physical=True), fig.canvas.buffer_rgba()
        )
        self.client.log_image(
            self.run_id, image.convert("RGB"), key=key, step=int(step), synchronous=True
        )

    def finish(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        try:
            self.close()
            self.flush()
            # an interruption is not an error: a resumed run that completes has no error.txt
            if error is not None:
                name = "interrupted.txt" if status == "KILLED" else "error.txt"
                self.log_text("".join(traceback.format_exception(error)), name)
        finally:
            self.client.set_terminated(self.run_id, status=status)


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
    return [
        (e.experiment_id, e.name)
        for e in get_client(tracking_uri).search_experiments()
        if e.name != "Default"
    ]
