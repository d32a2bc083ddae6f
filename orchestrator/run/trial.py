"""One trial, end to end: resolved config → task (frozen base + LoRA + data) → evolution → MLflow run.

Input is validated and the model built *before* anything is written to the tracking store, so bad input
leaves no trace. A failed run is marked FAILED with its traceback; Ctrl-C marks it KILLED.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from evolora.evolution import Evolution, Observer
from evolora.evolution.errors import ConfigError, EvoloraWarning
from evolora.evolution.lineage import LineageRecorder
from evolora.fitness import build_task
from evolora.orchestrator.assembly import build_evolution, task_spec
from evolora.orchestrator.errors import TrackingUnavailable, TrialFenced, TrialPruned
from evolora.orchestrator.run.checkpoints import (
    CHECKPOINT_TAG,
    INCOMPLETE_TAG,
    checkpoint_identity,
    load_checkpoint,
    run_checkpoint,
)
from evolora.orchestrator.run.describe import default_run_name, log_datasets, run_note
from evolora.orchestrator.run.observers import Checkpointer, CurvesImage, SampleTable
from evolora.orchestrator.run.outcome import (
    Report,
    RunOutcome,
    budget_exclusions,
    log_champion,
    log_report,
    score_objectives,
    score_test,
    score_validation_by_source,
)
from evolora.orchestrator.run.plots import BasinRecorder
from evolora.orchestrator.run.progress import ProgressBar
from evolora.orchestrator.signals import deferred_signals
from evolora.orchestrator.study.sections import StudyConfig, resolved
from evolora.orchestrator.tracking.runlog import (
    MlflowTracker,
    default_tracking_uri,
    library_versions,
)

__all__ = [
    "run_trial",
    "Trial",
    "RunSettings",
    "run_checkpoint",
    "CHECKPOINT_TAG",
    "INCOMPLETE_TAG",
    "prepare_torch",
    "Checkpointer",
    "load_checkpoint",
    "checkpoint_identity",
]


def prepare_torch(cfg: StudyConfig) -> int:
    """Thread count and torch seed for this trial (DEAP's and numpy's are seeded by the loop)."""
    if cfg.model.threads is not None:
        torch.set_num_threads(cfg.model.threads)
    torch.manual_seed(cfg.seed)
    return torch.get_num_threads()


def check_validation_defined(cfg: StudyConfig, task) -> None:
    """The validation metric must be a number for the base model, or no champion can be chosen: a split where
    it is undefined (every score equal, a single pair, a term that cannot score it) is refused before anything
    is written, naming the split."""
    # the loop's generation 0 reuses it (Task keeps the base's)
    v = task.validate(task.seed_genome())
    value = float(getattr(v, "value", v))
    if not math.isfinite(value):
        d = cfg.data
        field, what = (
            ("data.val_fraction", d.val_fraction)
            if d.val_fraction is not None
            else ("data.dev_path", d.dev_path)
        )
        raise ConfigError(
            field,
            f"{cfg.validation.metric} of the base model on the validation split "
            f"({len(task.val_items)} examples) is {value}: the metric is undefined there (every score "
            "equal, fewer than two examples, or a term that cannot score them), so nothing could be "
            "chosen",
            what,
        )


@dataclass(frozen=True)
class RunSettings:
    """Where a trial's MLflow run goes and how it runs: the store, its parent run, name, extra tags and
    params (a sweep trial's), the progress bar, and the checkpoint it saves to and resumes from."""

    tracking_uri: str | None = None  # default: the local store
    track: bool = True  # False: no MLflow run at all (reproduce)
    parent_run_id: str | None = None
    run_name: str | None = None  # default: study-strategy-seed
    tags: dict = field(default_factory=dict)
    params: dict | None = None  # logged beside the study's own (a sweep trial's sampled values)
    progress: bool = True
    # loop state saved after every generation; resumed from when it exists
    checkpoint: Path | None = None
    # whose checkpoint it is besides the config (a sweep's study)
    checkpoint_owner: dict = field(default_factory=dict)
    # the checkpoint is the run's own (a resumed plain run): dropped when it finishes
    own_checkpoint: bool = False


class Trial:
    """One trial's run, in the order it lives: made (the task built, a checkpoint read: bad input fails here,
    before anything is written), its MLflow run opened, evolved, scored, ended (FINISHED, KILLED, FAILED, or
    left for its retry). A caller that needs the run before the evolution starts (a sweep records its id
    on the Optuna trial) opens it itself."""

    def __init__(self, cfg: StudyConfig, settings: RunSettings = RunSettings()) -> None:
        self.cfg, self.settings = cfg, settings
        self.threads = prepare_torch(cfg)
        self.task = build_task(task_spec(cfg))  # raises ConfigError before anything is written
        check_validation_defined(cfg, self.task)
        self.conf = resolved(cfg)
        self.identity = checkpoint_identity(self.conf, settings.checkpoint_owner)
        self.ck = load_checkpoint(settings.checkpoint, self.identity)
        self.tracker: MlflowTracker | None = None
        # a plain tracked run's own is chosen when its run opens
        self.checkpoint: Path | None = settings.checkpoint
        self._champion_logged = False
        self.lineage_path: Path | None = None  # the run's lineage file, once the run has opened
        self.pool = None  # the Ray actors scoring the populations (ray.actors ≥ 1), started last
        if cfg.ray.actors:
            from evolora.orchestrator.distributed.pool import RayPool, check_terms_reach_actors

            check_terms_reach_actors(cfg)
            r = cfg.ray
            self.pool = RayPool(
                self.conf,
                r.actors,
                r.threads or cfg.model.threads or 1,
                r.address,
                r.num_gpus,
                r.retries,
            )

    def close(self) -> None:
        """Stop the trial's Ray actors (if any); the task stays usable in this process."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def open_run(self) -> MlflowTracker | None:
        """The trial's MLflow run (a resumed trial's own), made on first call; None when not tracked."""
        s, cfg = self.settings, self.cfg
        if self.tracker is None and s.track:
            task = self.task
            tags = {
                "evolora.seed": str(cfg.seed),
                "evolora.torch_threads": str(self.threads),
                "evolora.study": cfg.name,
                "evolora.genome_size": str(task.layout.size),
                "evolora.trunk_cache": str(task.evaluator.use_cache),
                "evolora.trunk_memo": str(getattr(task.evaluator, "memoised", False)),
                "evolora.ray_actors": str(cfg.ray.actors),
                **{f"version.{k}": v for k, v in library_versions().items()},
                **s.tags,
            }
            # a run is never left half-made (RUNNING, nobody to end it) by a signal
            with deferred_signals():
                self.tracker = MlflowTracker(
                    s.tracking_uri or default_tracking_uri(),
                    cfg.mlflow.experiment,
                    s.run_name or default_run_name(cfg),
                    self.conf,
                    tags,
                    s.parent_run_id,
                    cfg.mlflow.flush_every,
                    run_id=self.ck["run_id"] if self.ck else None,
                    extra_params=s.params,
                    system_metrics=cfg.mlflow.system_metrics,
                )
                if self.ck:  # resumed: it is no longer a stopped run
                    self.tracker.delete_tag(INCOMPLETE_TAG)
        return self.tracker

    def run(
        self, observers: Sequence[Observer] = (), guards: Sequence[Observer] = ()
    ) -> RunOutcome:
        """Evolve, score and end the run. ``guards`` see each generation first (a sweep's fence), the
        ``observers`` last. A tracked run checkpoints every generation (a sweep's trial where its sweep says, a
        plain run beside its tracking store, dropped when it finishes); a run stopped by a signal or an error
        logs the champion it had (tagged ``evolora.incomplete``) and can resume from its checkpoint."""
        evo = None
        try:
            tracker = self.open_run()
            self.checkpoint = self.settings.checkpoint
            if self.checkpoint is None and tracker is not None:
                self.checkpoint = run_checkpoint(tracker.tracking_uri, tracker.run_id)
            lineage_dir = None if self.checkpoint is not None else tempfile.TemporaryDirectory()
            lineage_path = (
                Path(self.checkpoint).with_suffix(".lineage.jsonl")
                if lineage_dir is None
                else Path(lineage_dir.name) / "lineage.jsonl"
            )
            self.lineage_path = lineage_path  # the stopped run's salvage logs it
            if tracker:
                tracker.set_tags({CHECKPOINT_TAG: str(self.checkpoint)})
            if tracker and not self.ck:
                tracker.describe(run_note(self.cfg))
                log_datasets(tracker, self.cfg, self.task)
            evo, basins, curves = self._loop(lineage_path, observers, guards)
            result = evo.run()
            outcome = self._score(result, lineage_path, basins, curves)
        except BaseException as e:
            # a second Ctrl-C or SIGTERM waits until the run has its final status
            with deferred_signals():
                try:
                    self._salvage(evo, e)
                finally:
                    self._stopped(e)
                    self.close()
            raise
        self.close()
        if tracker:
            tracker.finish("FINISHED")
        if (
            self.settings.checkpoint is None or self.settings.own_checkpoint
        ) and self.checkpoint is not None:
            # a plain run's own checkpoint: done with
            Path(self.checkpoint).unlink(missing_ok=True)
            lineage_path.unlink(missing_ok=True)
        if lineage_dir is not None:
            lineage_dir.cleanup()
        return outcome

    def _salvage(self, evo: Evolution | None, e: BaseException) -> None:
        """A run stopped before its end (a signal, a failing term) logs the champion it had, as a finished run
        would (adapter, model, lineage), tagged as from an incomplete run; what stopped it ends it after."""
        tracker = self.tracker
        if (
            tracker is None
            or evo is None
            or evo.champion is None
            or evo.gen < 0
            or self._champion_logged
            or isinstance(e, (TrialFenced, TrackingUnavailable, TrialPruned))
        ):
            return  # nothing to log, nowhere to log it, or logged already (a failure after the evolution's end)
        try:
            why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
            tracker.set_tags(
                {
                    INCOMPLETE_TAG: f"stopped after generation {evo.gen} of "
                    f"{self.cfg.evolution.generations - 1} ({why[:200]}); champion of the generations "
                    "completed"
                }
            )
            if self.lineage_path is not None and self.lineage_path.is_file():
                log_champion(tracker, self.task, self.conf, evo.result(), self.lineage_path)
        except Exception as err:  # the run still ends with its status; what was logged stays
            warnings.warn(
                f"could not log the stopped run's champion: {type(err).__name__}: {err}",
                EvoloraWarning,
                stacklevel=2,
            )

    def _loop(self, lineage_path: Path, observers: Sequence[Observer], guards: Sequence[Observer]):
        """The generation loop with its observers, in the order they must see each generation: guards,
        lineage and tracker flush, basins snapshot, then the checkpoint is written; then the rest."""
        cfg, task, tracker, checkpoint = self.cfg, self.task, self.tracker, self.checkpoint
        lineage, basins = LineageRecorder(lineage_path), BasinRecorder(cfg.evolution.generations)
        if self.ck:
            basins.snaps = dict(self.ck.get("basins", {}))
        obs: list[Observer] = [
            *([self.pool] if self.pool else []),
            *guards,
            lineage,
            *([tracker] if tracker else []),
            basins,
        ]
        if checkpoint is not None:
            obs.append(
                Checkpointer(checkpoint, self.identity, tracker.run_id if tracker else None, basins)
            )
        obs += [
            ProgressBar(
                cfg.evolution.generations,
                desc=self.settings.run_name or cfg.name,
                disable=not self.settings.progress,
            ),
            *observers,
        ]
        curves = None
        if tracker:
            if hasattr(task, "samples"):
                obs.append(SampleTable(task, tracker))
            curves = CurvesImage(
                tracker,
                f"{cfg.name} (seed {cfg.seed})",
                cfg.evolution.generations,
                cfg.data.rotate,
                note=run_note(cfg),
            )
            obs.append(curves)
        evaluate = self.pool if self.pool is not None else task.evaluate
        evo = build_evolution(
            cfg, task, evaluate, obs, checkpoint_every=1 if checkpoint is not None else 0
        )
        if self.ck:
            evo.load_state_dict(self.ck["loop"])
        return evo, basins, curves

    def _score(self, result, lineage_path: Path, basins: BasinRecorder, curves) -> RunOutcome:
        """What the evolution made is logged first; what comes after (test scoring, tables, pictures) fails
        alone, each step's failure reported, the run then failed."""
        task, tracker = self.task, self.tracker
        model_uri = (
            log_champion(tracker, task, self.conf, result, lineage_path) if tracker else None
        )
        self._champion_logged = True
        report = Report()
        excluded = budget_exclusions(result, bool(self.cfg.validation.budget))
        test = report.step("test scoring", score_test, task, result)
        val_by_source = report.step(
            "validation by source", score_validation_by_source, task, result
        )
        objectives = report.step("objectives", score_objectives, task, result)
        if tracker:
            log_report(
                report,
                tracker,
                task,
                self.conf,
                result,
                basins,
                test,
                curves,
                val_by_source,
                excluded,
                objectives,
                model_uri,
            )
        report.raise_if_failed()
        return RunOutcome(
            tracker.run_id if tracker else None,
            result,
            test,
            model_uri,
            objectives,
            val_by_source,
            excluded,
            task.validation_measure(),
        )

    def _stopped(self, e: BaseException) -> None:
        """The run's status for what stopped it: the one mapping."""
        tracker = self.tracker
        if tracker is None:
            return
        if isinstance(e, (TrialFenced, TrackingUnavailable)):
            # fenced: declared dead elsewhere, its retry owns the checkpoint and the run; tracking gone: nothing
            # more can be written, the run stays RUNNING and a sweep's retry resumes it from the checkpoint
            tracker.close()
        # stopped early by choice: FINISHED, tagged optuna.state=PRUNED by the sweep
        elif isinstance(e, TrialPruned):
            tracker.set_tags({"evolora.pruned": str(e)})
            tracker.finish("FINISHED", None)
        elif isinstance(e, KeyboardInterrupt):
            if self.checkpoint is not None:
                tracker.discard_unflushed()  # rows after the last checkpoint: the resumed run logs them, once
            tracker.finish("KILLED", e)
        else:
            tracker.finish("FAILED", e)


def run_trial(
    cfg: StudyConfig,
    settings: RunSettings = RunSettings(),
    observers: Sequence[Observer] = (),
    guards: Sequence[Observer] = (),
) -> RunOutcome:
    """Evolve one adapter: :class:`Trial` made, run, ended. With ``settings.checkpoint``, the loop state is
    saved there after every generation and, if the file exists, the run resumes from it (same MLflow run,
    same random streams)."""
    return Trial(cfg, settings).run(observers, guards)
