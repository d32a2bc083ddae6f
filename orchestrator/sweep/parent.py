"""The sweep's parent run: made once per study (shared by every host), the optimisation history as its
own curves (one point per finished trial), the registered champion, and at the end the study's answer —
the best trial in its description, trial counts, and the study's pictures."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from evolora.orchestrator.study.sections import StudyConfig, resolved
from evolora.orchestrator.sweep.record import PARENT_RUN_ID, TrialRecord
from evolora.orchestrator.sweep.sampling import objectives
from evolora.orchestrator.sweep.storage import storage_lock
from evolora.orchestrator.tracking.runlog import MlflowTracker, resume_run

if TYPE_CHECKING:
    from evolora.orchestrator.sweep.context import SweepContext

__all__ = [
    "parent_run",
    "best_trial",
    "pareto_front",
    "log_trial",
    "registered_name",
    "register",
    "finish_parent",
]


def parent_run(ctx: SweepContext, study: optuna.Study) -> str:
    """The study's one parent run: made by the first host to get here (under the study's lock, so hosts
    starting at once share it), resumed by the others."""
    with storage_lock(ctx.storage_url, f"parent-{ctx.cfg.name}"):
        return _find_or_make_parent(ctx, study)


def _find_or_make_parent(ctx: SweepContext, study: optuna.Study) -> str:
    run_id = study.user_attrs.get(PARENT_RUN_ID)
    # else recorded in another tracking store: make one here
    if run_id and resume_run(ctx.uri, run_id):
        return run_id
    tracker = MlflowTracker(
        ctx.uri,
        ctx.cfg.mlflow.experiment,
        f"sweep-{ctx.cfg.name}",
        resolved(ctx.cfg),
        {"evolora.role": "sweep", "evolora.study": ctx.cfg.name, "optuna.storage": ctx.storage_url},
    )
    study.set_user_attr(PARENT_RUN_ID, tracker.run_id)
    return tracker.run_id


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The study's best trial; for a Pareto sweep, the best on the first objective (one of the front)."""
    if len(study.directions) == 1:
        return study.best_trial
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ValueError("no complete trial")
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.values[0])


def log_trial(
    ctx: SweepContext, study: optuna.Study, number: int, values: list[float] | None
) -> None:
    """The optimisation history as the parent run's own curves (step = trial number), so MLflow charts it
    natively: each finished trial's value and the best so far; for a Pareto sweep each objective's value
    (``trial_<metric>``) and the size of the Pareto front so far."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.number <= number
    ]
    names = objectives(ctx.cfg)
    metrics: dict[str, float] = {}
    if len(names) == 1:
        if values is not None:
            metrics["trial_value"] = values[0]
        if done:
            metrics["best_so_far"] = (max if names[0][1] == "maximize" else min)(
                t.value for t in done
            )
    else:
        if values is not None:
            metrics |= {f"trial_{name}": v for (name, _), v in zip(names, values)}
        metrics["pareto_size"] = len(pareto_front(done, names))
    if metrics:
        MlflowTracker(
            ctx.uri, ctx.cfg.mlflow.experiment, "", {}, run_id=ctx.parent_run_id, attach=True
        ).log_metrics(metrics, step=number)


def pareto_front(trials: list, names: list[tuple[str, str]]) -> list:
    """The trials no other trial dominates (at least as good on every objective, better on one)."""
    sign = [1.0 if d == "maximize" else -1.0 for _, d in names]

    def dominates(a, b) -> bool:
        x, y = [s * v for s, v in zip(sign, a.values)], [s * v for s, v in zip(sign, b.values)]
        return all(p >= q for p, q in zip(x, y)) and any(p > q for p, q in zip(x, y))

    return [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]


def registered_name(cfg: StudyConfig) -> str:
    return cfg.mlflow.registered_model or cfg.name


def register(ctx: SweepContext, study: optuna.Study, number: int, outcome, value: float) -> None:
    """A new best trial becomes a version of the study's registered model and takes the `champion` alias
    (for a Pareto sweep: best on the first objective); under the storage lock, so two workers finishing at
    once cannot move it backwards."""
    from evolora.orchestrator.tracking.models import register_champion

    tags = {
        "trial": number,
        "study": ctx.cfg.name,
        "optuna.storage": ctx.storage_url,
        **outcome.version_tags(),
    }
    with storage_lock(ctx.storage_url, f"register-{ctx.cfg.name}"):
        register_champion(
            ctx.uri,
            registered_name(ctx.cfg),
            outcome.model_uri,
            outcome.run_id,
            value,
            objectives(ctx.cfg)[0][1],
            tags,
            measure=outcome.measure,
        )


def _parent_note(ctx: SweepContext, study: optuna.Study, best, n: Counter) -> str:
    """The study's answer in the parent run's description: the best trial, its params and figures; for a
    Pareto sweep, the front."""
    rec = TrialRecord.of(best)
    base = rec.val_base
    names = objectives(ctx.cfg)
    what = (
        f"objective: {ctx.cfg.validation.metric} on validation ({ctx.cfg.sweep.direction})"
        if len(names) == 1
        else "objectives (validation): " + ", ".join(f"{m} ({d})" for m, d in names)
    )
    lines = [
        f"**{ctx.cfg.name}**: {n.get('COMPLETE', 0)} complete, {n.get('PRUNED', 0)} pruned, "
        f"{n.get('FAIL', 0)} failed trials; {what}.",
        "",
    ]
    if len(names) == 1:
        lines.append(
            f"**Best: trial {best.number}** — validation {best.value:.5f}"
            + (f" (base {base:.5f}, gain {best.value - base:+.5f})" if base is not None else "")
        )
    else:
        front = sorted(
            pareto_front(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), names),
            key=lambda t: t.number,
        )
        lines += [
            f"**Pareto front: {len(front)} trials** (`evolora reproduce|export {ctx.cfg.name} --trial N`)",
            "",
            "| trial | " + " | ".join(m for m, _ in names) + " | params |",
            "|---|" + "---|" * len(names) + "---|",
            *[
                f"| {t.number} | " + " | ".join(f"{v:.5f}" for v in t.values) + f" | `{t.params}` |"
                for t in front
            ],
            "",
            f"**Best on {names[0][0]}: trial {best.number}** — {best.values[0]:.5f}",
        ]
    test = rec.test
    if test:
        lines[-1] += f"; test {test['champion']:.5f} (gain {test['gain']:+.5f}, chose nothing)"
    lines += [
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in best.params.items()],
        "",
    ]
    if ctx.cfg.mlflow.register_best:
        lines.append(
            f"Model: `models:/{registered_name(ctx.cfg)}@champion`; adapter: "
            f"`evolora export {ctx.cfg.name} --trial {best.number} --out DIR`."
        )
    return "\n".join(lines)


def finish_parent(ctx: SweepContext, study: optuna.Study, status: str) -> None:
    import tempfile

    from evolora.orchestrator.run.plots import plot_study

    tracker = MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, "", {}, run_id=ctx.parent_run_id)
    n = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    tracker.log_metrics({f"trials_{k.lower()}": v for k, v in n.items()})
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if done:
        best, names = best_trial(study), objectives(ctx.cfg)
        tracker.log_metrics({"best_value": best.values[0]})
        tags = {
            "evolora.best_trial": best.number,
            "evolora.best_run_id": TrialRecord.of(best).run_id or "",
            "mlflow.note.content": _parent_note(ctx, study, best, n),
        }
        if len(names) > 1:
            tags["evolora.pareto_trials"] = ",".join(
                str(t.number) for t in sorted(pareto_front(done, names), key=lambda t: t.number)
            )
        tracker.set_tags(tags)
        with tempfile.TemporaryDirectory() as tmp:
            plot_study(study, Path(tmp), [m for m, _ in names])
            tracker.log_artifacts(tmp, "study")
    tracker.finish(status)


def summary_lines(
    cfg: StudyConfig, study: optuna.Study, study_file: str, where: dict | None = None
) -> list[str]:
    """What ``evolora sweep`` prints at its end: the trials by state, each trial's values and params, the
    Pareto front, the best trial with how to export it, and its registered model."""
    trials = study.get_trials(deepcopy=False)
    out: list[str] = []
    out.append(
        f"study {cfg.name}: "
        + ", ".join(
            f"{sum(t.state == s for t in trials)} {s.name.lower()}"
            for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
    )
    for t in trials:
        val = " ".join(f"{v:.5f}" for v in t.values) if t.values is not None else "-"
        out.append(f"  trial {t.number:3d}  {t.state.name:8s}  {val:>8s}  {json.dumps(t.params)}")
    if any(t.state == TrialState.COMPLETE for t in trials):
        if cfg.sweep.objectives:
            names = objectives(cfg)
            front = pareto_front([t for t in trials if t.state == TrialState.COMPLETE], names)
            out.append(
                f"pareto front ({', '.join(f'{m} {d}' for m, d in names)}): trials "
                + ", ".join(str(t.number) for t in sorted(front, key=lambda t: t.number))
            )
        b = best_trial(study)
        out.append(
            f"best{' on ' + cfg.sweep.objectives[0].metric if cfg.sweep.objectives else ''}: trial {b.number}, "
            f"value {b.values[0]:.5f}, params {json.dumps(b.params)}"
        )
        out.append(
            f"export: evolora export {study_file} --trial best --out adapters/{cfg.name}-trial{b.number}"
            + "".join(f" {flag} {shlex.quote(str(v))}" for flag, v in (where or {}).items() if v)
        )
        if cfg.mlflow.register_best:
            out.append(
                f"model: models:/{registered_name(cfg)}@champion (mlflow.pyfunc.load_model, or evolora export)"
            )
    return out
