"""The outer loop: an Optuna study over a study file's search space, one MLflow child run per trial.

Each worker: claim a trial (:mod:`.claims`) → sample the searched config paths (:mod:`.sampling`) → a fully
concrete config (seed derived from study seed + trial root, torch threads pinned) → a
:class:`~evolora.orchestrator.run.trial.Trial` with an Optuna reporter (pruning on the validation metric), a
per-generation checkpoint, a background heartbeat and a fence → tell Optuna, log the trial on the parent run
and register a new best (:mod:`.parent`).
"""

from __future__ import annotations

import importlib
import math
import time
from collections import Counter

import optuna
from optuna.trial import TrialState

from evolora.evolution import Observer
from evolora.evolution.errors import EvoloraError
from evolora.evolution.genome import genome_sha256
from evolora.orchestrator.errors import TrackingUnavailable, TrialFenced, TrialPruned
from evolora.orchestrator.study.sections import resolved
from evolora.orchestrator.sweep.claims import (
    TRACKING_FAILURE,
    Fence,
    Liveness,
    beat_interval,
    claim,
)
from evolora.orchestrator.sweep.context import SweepContext
from evolora.orchestrator.sweep.optuna_study import open_study
from evolora.orchestrator.sweep.parent import log_trial, register
from evolora.orchestrator.sweep.record import TrialRecord, store
from evolora.orchestrator.sweep.sampling import (
    objectives,
    sample,
    trial_config,
    trial_seed,
)
from evolora.orchestrator.sweep.storage import open_storage
from evolora.orchestrator.tracking.retry import backoff
from evolora.orchestrator.tracking.runlog import MlflowTracker

__all__ = ["open_study", "run_worker", "OptunaReporter"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- the study --------------------------------------------------------------------------------------


# ---- one trial --------------------------------------------------------------------------------------
class OptunaReporter(Observer):
    """Reports the best validation so far every ``every`` generations; raises TrialPruned when told to."""

    def __init__(self, trial: optuna.Trial, every: int) -> None:
        self.trial, self.every = trial, every

    def on_generation(self, row: dict) -> None:
        gen = row["gen"]
        if "val_champion" in row and gen > 0 and gen % self.every == 0:
            self.trial.report(row["val_champion"], step=gen)
            if self.trial.should_prune():
                raise TrialPruned(
                    f"pruned at generation {gen} (best validation {row['val_champion']:.5f})"
                )


class ResumeNote(Observer):
    """Records on the trial the generation a retried trial resumed from (its checkpoint's)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_start(self, info: dict) -> None:
        if info.get("resumed"):
            store(self.trial, resumed_from_gen=int(info["gen"]))


def _threads(ctx: SweepContext, trial: optuna.Trial) -> int:
    """Torch threads a trial runs with (pinned in its config: the thread count is part of what makes a seed's
    numbers exact). A retry takes its killed trial's, so it resumes that trial's checkpoint whatever this
    worker's own count: a sweep started with ``--workers 2`` (one thread each) and resumed alone, or on a
    host with other cores, loses no completed generation."""
    if ctx.cfg.model.threads is not None:
        return ctx.cfg.model.threads
    threads = TrialRecord.of(trial).threads
    if threads is not None:
        return int(threads)
    return 1 if ctx.workers > 1 else ctx.own_threads


def _run_one(ctx: SweepContext, study: optuna.Study, trial: optuna.Trial) -> TrialState:
    """A trial's life, as Optuna's own ``_run_trial`` lives it: run, map what happened to one state, tell once
    (:func:`_end`). A trial fenced off (declared dead while it ran; its retry owns it) writes nothing more."""
    # beat first: nothing slow may come between the claim (its first beat) and the heartbeat thread
    live = Liveness(
        open_storage(ctx.storage_url), study, trial.number, beat_interval(ctx.cfg)
    ).start()
    # imported by run_worker() before its first claim: instant here
    from evolora.orchestrator.run.trial import Trial

    root, seed, tags = _identity(ctx, trial)
    run: Trial | None = None
    outcome, error = None, None
    try:
        params = sample(trial, ctx.cfg)
        cfg = trial_config(ctx.cfg, trial.params, seed, _threads(ctx, trial))
        store(trial, root=root, seed=seed, config=resolved(cfg))
        assert set(params) == set(trial.params)
        run = _new_trial(ctx, trial, cfg, root, tags)
        store(trial, run_id=run.open_run().run_id)
        reporter = (
            [] if ctx.cfg.sweep.objectives else [OptunaReporter(trial, ctx.cfg.sweep.report_every)]
        )
        outcome = run.run(observers=[ResumeNote(trial), *reporter], guards=[Fence(live)])
    except TrialFenced:  # another worker owns the retry now: write nothing more, tell nothing
        return TrialState.FAIL
    except KeyboardInterrupt:
        _end(ctx, study, trial, _runs(run), root, TrialState.FAIL, {"failure": "interrupted"})
        raise
    except (
        EvoloraError,
        ValueError,
        RuntimeError,
    ) as e:  # TrialPruned, TrackingUnavailable among them
        error = e
    finally:
        live.stop()
    if live.fenced.is_set():  # e.g. Optuna refusing a report on a trial declared dead meanwhile
        return TrialState.FAIL
    if (
        error is not None
        and not isinstance(error, (TrialPruned, TrackingUnavailable))
        and not _runs(run)
    ):
        # failed before its run existed (an invalid sampled combination)
        _failed_run(ctx, trial, tags, error)
    state, fields, values = _outcome(ctx, error, outcome)
    # the tracking server gone: tag nothing
    return _end(
        ctx,
        study,
        trial,
        _runs(run),
        root,
        state,
        fields,
        values,
        outcome,
        tag=not isinstance(error, TrackingUnavailable),
    )


def _identity(ctx: SweepContext, trial: optuna.Trial) -> tuple[int, int, dict[str, str]]:
    """A trial's root (the number of its first try: a retry runs as its root), seed and MLflow tags."""
    rec = TrialRecord.of(trial)
    root = rec.root if rec.root is not None else trial.number
    seed = ctx.cfg.seed if ctx.cfg.sweep.seeds == "study" else trial_seed(ctx.cfg.seed, root)
    tags = {
        "optuna.study": ctx.cfg.name,
        "optuna.trial_number": str(trial.number),
        "optuna.trial_root": str(root),
    }
    if rec.retry_of is not None:
        tags["optuna.retry_of"] = str(rec.retry_of)
    return root, seed, tags


def _new_trial(ctx: SweepContext, trial: optuna.Trial, cfg, root: int, tags: dict):
    """The run of a sampled config: a child of the sweep's parent run, checkpointed under the trial's root."""
    from evolora.orchestrator.run.trial import RunSettings, Trial

    return Trial(
        cfg,
        RunSettings(
            tracking_uri=ctx.uri,
            parent_run_id=ctx.parent_run_id,
            tags=tags,
            run_name=f"t{root:03d}-{cfg.evolution.strategy}-s{cfg.seed}",
            params=trial.params,
            progress=ctx.progress,
            checkpoint=ctx.checkpoint(root),
            checkpoint_owner=ctx.checkpoint_owner,
        ),
    )


def _runs(run) -> list[MlflowTracker]:
    """The trial's MLflow run, once it was opened (none if the trial failed before)."""
    return [run.tracker] if run is not None and run.tracker is not None else []


def _outcome(
    ctx: SweepContext, error: BaseException | None, outcome
) -> tuple[TrialState, dict, list | None]:
    """What happened → (the trial's state, the record fields it stores, its values): the one mapping."""
    if isinstance(error, TrialPruned):
        return TrialState.PRUNED, {"pruned": str(error)}, None
    # retriable: the retry resumes from the checkpoint, same run
    if isinstance(error, TrackingUnavailable):
        return TrialState.FAIL, {"failure": TRACKING_FAILURE, "failure_detail": str(error)}, None
    if error is not None:
        return TrialState.FAIL, {"failure": f"{type(error).__name__}: {error}"}, None
    r = outcome.result
    # Optuna fails a nan value itself: say so here, and count it as failed
    if not math.isfinite(r.champion_val):
        return (
            TrialState.FAIL,
            {"failure": f"the validation metric is {r.champion_val} (undefined)"},
            None,
        )
    fields = {
        "champion_sha256": genome_sha256(r.champion),
        "best_fitness": r.best_fitness,
        "val_base": r.base_val,
        "val_champion": r.champion_val,
    }
    # recorded beside the trial; the objective below is validation only
    if outcome.test is not None:
        fields["test"] = outcome.test
    values = [r.champion_val]
    if outcome.objectives:  # a Pareto sweep: each objective on validation, for the champion
        fields["objectives"] = outcome.objectives
        values = [outcome.objectives[name]["champion"] for name, _ in objectives(ctx.cfg)]
    return TrialState.COMPLETE, fields, values


def _end(
    ctx: SweepContext,
    study: optuna.Study,
    trial: optuna.Trial,
    trackers: list[MlflowTracker],
    root: int,
    state: TrialState,
    fields: dict,
    values: list | None = None,
    outcome=None,
    tag: bool = True,
) -> TrialState:
    """The trial's end, once: its record, its runs tagged, one tell; then a finished trial's checkpoint dropped,
    its line on the parent run, and a new best registered."""
    # declared dead after its last beat: the retry resumes at the end
    try:
        store(trial, **fields)
        if state == TrialState.COMPLETE:
            study.tell(trial, values)
        else:
            study.tell(trial, state=state)
    except (
        ValueError,
        RuntimeError,
    ):
        return TrialState.FAIL
    if tag:
        _tag(trackers, state.name, trial.number)
    if state in (TrialState.COMPLETE, TrialState.PRUNED):
        _drop_checkpoint(ctx, root)
        log_trial(ctx, study, trial.number, values)
    if state == TrialState.COMPLETE and ctx.cfg.mlflow.register_best and outcome.model_uri:
        register(ctx, study, trial.number, outcome, values[0])
    return state


def _drop_checkpoint(ctx: SweepContext, root: int) -> None:
    ck = ctx.checkpoint(root)
    ck.unlink(missing_ok=True)
    ck.with_suffix(".lineage.jsonl").unlink(missing_ok=True)


def _tag(trackers: list[MlflowTracker], state: str, number: int) -> None:
    for t in trackers:
        t.set_tags({"optuna.state": state, "optuna.trial_number": str(number)})


def _failed_run(ctx: SweepContext, trial: optuna.Trial, tags: dict, err: BaseException) -> None:
    t = MlflowTracker(
        ctx.uri,
        ctx.cfg.mlflow.experiment,
        f"trial-{trial.number}",
        resolved(ctx.cfg),
        tags,
        ctx.parent_run_id,
        extra_params=trial.params,
    )
    store(trial, run_id=t.run_id)
    t.set_tags({"optuna.state": "FAIL"})
    t.finish("FAILED", err)


# ---- workers ----------------------------------------------------------------------------------------
def run_worker(ctx: SweepContext, index: int = 0, study: optuna.Study | None = None) -> Counter:
    """Claim and run trials until the study has ``n_trials`` (or the timeout passes). When the budget is
    claimed but trials still run elsewhere, wait for them: if one's worker dies, its retry is claimed here,
    so the study completes while any worker of any host lives."""
    if index:
        from evolora.orchestrator.run.progress import quiet_libraries

        quiet_libraries()
    # torch, transformers, peft, mlflow: seconds, tens on a loaded host — spent before a claim, never between
    # a claim and its heartbeat thread (the soak caught live trials declared dead while importing)
    importlib.import_module("evolora.orchestrator.run.trial")
    study = study or open_study(ctx, create=False)
    start, done, failures_in_a_row, waiting = time.time(), Counter(), 0, False
    while ctx.timeout is None or time.time() - start < ctx.timeout:
        trial = claim(ctx, study)  # raises once failed trials reach the cap (claims.check_failures)
        if trial is None:
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            if not running:
                break
            if not waiting:
                print(
                    f"evolora: the budget is claimed; waiting for {running} trial(s) still running (their retry "
                    "is taken here if a worker dies)",
                    flush=True,
                )
            waiting = True
            time.sleep(min(beat_interval(ctx.cfg), 5.0))
            continue
        waiting = False
        state = _run_one(ctx, study, trial)
        done[state.name] += 1
        failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        if failures_in_a_row >= 5:
            raise EvoloraError(
                f"5 trials in a row failed; last: {TrialRecord.of(study.trials[trial.number]).failure}"
            )
        if failures_in_a_row:
            # back off before the next claim (1, 2, 4, 8 s): a failure from an unreachable server or storage
            # would otherwise repeat at once and spend the five tries inside one short outage
            time.sleep(backoff(failures_in_a_row, 1.0, 30.0))
    return done
