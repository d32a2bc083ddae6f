"""The sweep's parent run: made once per study (shared by every host), the optimisation history as its
own curves (one point per finished trial), the registered champion, and at the end the study's answer —
the best trial in its description, trial counts, and the study's pictures."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from .config import StudyConfig, resolved
from .storage import ATTR, storage_lock
from .tracking import MlflowTracker, resume_run

if TYPE_CHECKING:
    from .sweep import SweepContext

__all__ = ["parent_run", "log_trial", "registered_name", "register", "finish_parent"]


def parent_run(ctx: SweepContext, study: optuna.Study) -> str:
    """The study's one parent run: made by the first host to get here (under the study's lock, so hosts
    starting at once share it), resumed by the others."""
    with storage_lock(ctx.storage_url, f"parent-{ctx.cfg.name}"):
        return _find_or_make_parent(ctx, study)


def _find_or_make_parent(ctx: SweepContext, study: optuna.Study) -> str:
    run_id = study.user_attrs.get(ATTR + "parent_run_id")
    if run_id and resume_run(ctx.uri, run_id):  # else recorded in another tracking store: make one here
        return run_id
    tracker = MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, f"sweep-{ctx.cfg.name}", resolved(ctx.cfg),
                            {"evolora.role": "sweep", "evolora.study": ctx.cfg.name, "optuna.storage": ctx.storage_url})
    study.set_user_attr(ATTR + "parent_run_id", tracker.run_id)
    return tracker.run_id


def log_trial(ctx: SweepContext, study: optuna.Study, number: int, value: float | None) -> None:
    """The optimisation history as the parent run's own curves (step = trial number): each finished trial's
    value and the best so far, so MLflow charts it natively."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number <= number]
    metrics = {} if value is None else {"trial_value": value}
    if done:
        metrics["best_so_far"] = (max if ctx.cfg.sweep.direction == "maximize" else min)(t.value for t in done)
    if metrics:
        MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, "", {}, run_id=ctx.parent_run_id,
                      attach=True).log_metrics(metrics, step=number)


def registered_name(cfg: StudyConfig) -> str:
    return cfg.mlflow.registered_model or cfg.name


def register(ctx: SweepContext, study: optuna.Study, number: int, outcome) -> None:
    """A new best trial becomes a version of the study's registered model and takes the `champion` alias;
    under the storage lock, so two workers finishing at once cannot move it backwards."""
    from .tracking import register_champion

    tags = {"trial": number, "study": ctx.cfg.name, "optuna.storage": ctx.storage_url, **outcome.version_tags()}
    with storage_lock(ctx.storage_url, f"register-{ctx.cfg.name}"):
        register_champion(ctx.uri, registered_name(ctx.cfg), outcome.model_uri, outcome.run_id,
                          outcome.result.champion_val, ctx.cfg.sweep.direction, tags)


def _parent_note(ctx: SweepContext, study: optuna.Study, best, n: Counter) -> str:
    """The study's answer in the parent run's description: the best trial, its params and figures."""
    a = best.user_attrs
    base = a.get(ATTR + "val_base")
    lines = [f"**{ctx.cfg.name}**: {n.get('COMPLETE', 0)} complete, {n.get('PRUNED', 0)} pruned, "
             f"{n.get('FAIL', 0)} failed trials; objective: {ctx.cfg.validation.metric} on validation "
             f"({ctx.cfg.sweep.direction}).", "",
             f"**Best: trial {best.number}** — validation {best.value:.5f}"
             + (f" (base {base:.5f}, gain {best.value - base:+.5f})" if base is not None else "")]
    test = a.get(ATTR + "test")
    if test:
        lines[-1] += f"; test {test['champion']:.5f} (gain {test['gain']:+.5f}, chose nothing)"
    lines += ["", "| parameter | value |", "|---|---|", *[f"| `{k}` | {v} |" for k, v in best.params.items()], ""]
    if ctx.cfg.mlflow.register_best:
        lines.append(f"Model: `models:/{registered_name(ctx.cfg)}@champion`; adapter: "
                     f"`evolora export {ctx.cfg.name} --trial {best.number} --out DIR`.")
    return "\n".join(lines)


def finish_parent(ctx: SweepContext, study: optuna.Study, status: str) -> None:
    import tempfile

    from .plots import plot_study

    tracker = MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, "", {}, run_id=ctx.parent_run_id)
    n = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    tracker.log_metrics({f"trials_{k.lower()}": v for k, v in n.items()})
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if done:
        best = study.best_trial
        tracker.log_metrics({"best_value": best.value})
        tracker.set_tags({"evolora.best_trial": best.number, "evolora.best_run_id": best.user_attrs.get(ATTR + "run_id", ""),
                          "mlflow.note.content": _parent_note(ctx, study, best, n)})
        with tempfile.TemporaryDirectory() as tmp:
            plot_study(study, Path(tmp))
            tracker.log_artifacts(tmp, "study")
    tracker.finish(status)
