"""The end of a run, in two steps: what the evolution made is logged first — the validation summary, the
champion genome, lineage, adapter and MLflow model — and then, each step failing alone, the test split scored
once, the per-source and budget tables and the pictures. A step that fails leaves the champion logged and
fails the run with every reason (:class:`LateFailure`)."""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolora.evolution import RunResult
from evolora.evolution.errors import EvoloraError
from evolora.evolution.lineage import to_parquet
from evolora.fitness.serving import MODEL_FILE, write_model_dir
from evolora.orchestrator.run.plots import BasinRecorder, plot_basins, plot_species
from evolora.orchestrator.run.plots import close as close_figure
from evolora.orchestrator.tracking.models import log_model
from evolora.orchestrator.tracking.runlog import MlflowTracker

__all__ = [
    "RunOutcome",
    "LateFailure",
    "Report",
    "score_test",
    "score_validation_by_source",
    "score_objectives",
    "budget_exclusions",
    "log_champion",
    "log_report",
]


@dataclass
class RunOutcome:
    """What one run made (``evolora.run`` returns it; ``evolora run`` prints it).

    * ``run_id``: its MLflow run (None when not tracked); ``model_uri``: the champion as an MLflow model.
    * ``result``: the loop's :class:`~evolora.evolution.loop.RunResult` — the champion genome, its validation
      value against the base model's, the generation it came from, the logbook.
    * ``test``: ``{"champion", "base", "gain"}`` (and ``"by_source"``) on ``data.test_path``, scored once at
      the end; None without a test split. It chose nothing.
    * ``objectives``: a Pareto sweep's objectives on validation, ``{metric: {"champion", "base"}}``.
    * ``val_by_source``: the validation gain per source (genre, dataset) of the data.
    * ``excluded``: in a budgeted study, the validated genomes that were out of budget, and why.
    * ``measure``: what the validation values were measured with (e.g. greedy decoding, k completions)."""

    run_id: str | None
    result: RunResult
    # {"champion", "base", "gain"[, "by_source"]} on data.test_path; None without one
    test: dict[str, Any] | None = None
    model_uri: str | None = None  # the champion as an MLflow model (models:/m-…), when tracked
    # sweep.objectives: {metric: {champion, base}}, validation
    objectives: dict[str, dict[str, float]] | None = None
    # {source: {pairs, base, champion, gain}} on validation
    val_by_source: dict[str, dict[str, Any]] | None = None
    # budgeted study: validated genomes out of budget (gen, id, value, why)
    excluded: list[dict[str, Any]] | None = None
    # what the validation values were measured with (fitness Task.validation_measure)
    measure: str | None = None

    def version_tags(self) -> dict[str, float]:
        """The figures a registered model version carries: validation gain, and test when there is one."""
        tags = {"val_gain": self.result.champion_val - self.result.base_val}
        if self.test is not None:
            tags.update({"test": self.test["champion"], "test_gain": self.test["gain"]})
        return tags


def score_test(task, result: RunResult) -> dict[str, Any] | None:
    """The champion and the base model on the test split, once, after the evolution ended: for the record
    only (logged and printed; nothing reads it to choose)."""
    if not task.has_test:
        return None
    (champion, by_champion), (base, by_base) = (
        task.test_scores(result.champion),
        task.test_scores(task.seed_genome()),
    )
    out = {"champion": champion, "base": base, "gain": champion - base}
    # a budgeted study: the guards on the test split too (reported, never chosen by)
    if task.guard_terms:
        g_champion, g_base = task.test_guards(result.champion), task.test_guards(task.seed_genome())
        out["guards"] = {k: {"champion": v, "base": g_base[k]} for k, v in g_champion.items()}
    # STS-B: the same metric on each source of the test split (where the gain comes from)
    if by_champion:
        out["by_source"] = _source_gains(by_champion, by_base)
    return out


def _source_gains(by_champion: dict, by_base: dict) -> dict[str, dict[str, Any]]:
    """{source: (value, pairs)} of the champion and the base → {source: {pairs, base, champion, gain}}. A
    source the metric is undefined on (one pair, constant scores: a NaN correlation) reads None, not NaN."""

    def value(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    out = {}
    for k, (v, n) in by_champion.items():
        champion, base = value(v), value(by_base[k][0])
        gain = champion - base if champion is not None and base is not None else None
        out[k] = {"pairs": n, "base": base, "champion": champion, "gain": gain}
    return out


def score_validation_by_source(task, result: RunResult) -> dict[str, dict[str, Any]] | None:
    """The champion and the base model on each source of the validation split (STS-B names one per pair),
    once, after the evolution ended: {source: {pairs, base, champion, gain}}, or None for data without
    sources. A breakdown of the figure that chose the champion, not a new choice."""
    # causal examples, pairs without a source column: nothing to split
    if not getattr(task.val_items, "source", ()):
        return None
    (_, by_champion), (_, by_base) = (
        task.validation_scores(result.champion),
        task.validation_scores(task.seed_genome()),
    )
    return _source_gains(by_champion, by_base)


def budget_exclusions(result: RunResult, budgeted: bool = True) -> list[dict[str, Any]] | None:
    """A budgeted study's validated genomes that the budget kept from being the champion: gen, genome id,
    validation value, guards and why (from the logbook, so a resumed run reports its whole history)."""
    rows = [r for r in result.logbook if "val_admissible" in r]
    if not rows or not budgeted:
        return None
    return [
        {
            "gen": r["gen"],
            "genome": r["val_id"],
            "value": r["val"],
            "why": r["val_excluded"],
            **{
                k: v
                for k, v in r.items()
                if k.startswith("val_")
                and k
                not in ("val_admissible", "val_id", "val_excluded", "val_base", "val_champion")
            },
        }
        for r in rows
        if not r["val_admissible"]
    ]


def score_objectives(task, result: RunResult) -> dict[str, dict[str, float]] | None:
    """A Pareto sweep's objectives (``sweep.objectives``) for the champion and the base model, on the
    validation split, once the evolution has ended."""
    if not task.objective_terms:
        return None
    champion, base = task.objectives(result.champion), task.objectives(task.seed_genome())
    return {k: {"champion": champion[k], "base": base[k]} for k in champion}


class LateFailure(EvoloraError):
    """Something after the evolution failed (test scoring, a table, a picture); the champion was logged
    before it (adapter, model, genome, lineage) and everything else that could be was logged too."""


class Report:
    """The end of a run after the champion is safe: each step on its own; a failure is recorded and the
    steps after it still run; :meth:`raise_if_failed` then fails the run with every reason."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, BaseException]] = []

    def step(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception as e:
            self.failures.append((what, e))
            return None

    def raise_if_failed(self) -> None:
        if self.failures:
            reasons = "; ".join(f"{what}: {type(e).__name__}: {e}" for what, e in self.failures)
            raise LateFailure(
                f"the champion is logged (adapter, model, genome); then {reasons}"
            ) from self.failures[0][1]


def log_champion(
    tracker: MlflowTracker, task, conf: dict, result: RunResult, lineage_path: Path
) -> str:
    """What the evolution made, logged before anything that could still fail: the validation summary, config,
    logbook and layout, the champion genome, the lineage, the stock PEFT adapter and the champion as an MLflow
    model (pyfunc, loadable by name once registered). → the model's URI."""
    final = {
        "val_best": result.champion_val,
        "val_base_final": result.base_val,
        "val_gain": result.champion_val - result.base_val,
        "best_fitness": result.best_fitness,
        "champion_gen": result.champion_gen,
    }
    # a summary is logged at step 0: MLflow's UI draws a metric whose last step is 0 as a bar (its value, and
    # across runs a comparison), one with a later step as a line, which for a single value is one dot
    ts = int(time.time() * 1000)
    tracker.log_metrics(final, step=0, timestamp=ts)
    tracker.set_tags(
        {"evolora.champion_id": result.champion_id, "evolora.champion_gen": result.champion_gen}
    )
    tracker.log_dict(conf, "study.yaml")
    tracker.log_dict(list(result.logbook), "logbook.json")
    tracker.log_dict(task.layout.to_json(), "layout.json")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "champion.npy", result.champion)
        to_parquet(lineage_path, tmp / "lineage.parquet")
        for name in ("champion.npy", "lineage.parquet"):
            tracker.log_artifact(tmp / name)
        task.save_adapter(result.champion, tmp / "adapter")
        tracker.log_artifacts(tmp / "adapter", "adapter")
        model_dir = write_model_dir(task, result.champion, tmp / "champion")
        model_uri = log_model(
            tracker.tracking_uri,
            tracker.run_id,
            model_dir,
            json.loads((model_dir / MODEL_FILE).read_text()),
            step=result.generations - 1,
        )
    tracker.set_tags({"evolora.model_uri": model_uri})
    # the same figures on the model
    tracker.log_metrics(final, step=0, model_uri=model_uri, timestamp=ts)
    from evolora.orchestrator.run.progress import drain_warnings

    if (
        kept := drain_warnings()
    ):  # the libraries' warnings, off the terminal: here for whoever looks
        tracker.log_text(kept, "warnings.txt")
    return model_uri


def _summary_metrics(conf: dict, test: dict | None, excluded, objectives: dict | None) -> dict:
    """The run's end figures, logged at step 0 (MLflow's UI shows them as values, bars, not one-dot curves):
    test, budget exclusions, Pareto objectives."""
    final = {}
    if test is not None:
        final.update(
            {
                f"test_{conf['validation']['metric']}": test["champion"],
                "test_base": test["base"],
                "test_gain": test["gain"],
            }
        )
        final.update(
            {
                f"test_gain/{k}": v["gain"]
                for k, v in test.get("by_source", {}).items()
                if v["gain"] is not None
            }
        )
        final.update(
            {f"test_{k}": v["champion"] for k, v in test.get("guards", {}).items()}
            | {f"test_{k}_base": v["base"] for k, v in test.get("guards", {}).items()}
        )
    if excluded is not None:
        final["budget_excluded"] = len(excluded)
    if objectives:
        final.update(
            {f"objective_{k}": v["champion"] for k, v in objectives.items()}
            | {f"objective_{k}_base": v["base"] for k, v in objectives.items()}
        )
    return final


def log_report(
    report: Report,
    tracker: MlflowTracker,
    task,
    conf: dict,
    result: RunResult,
    basins: BasinRecorder,
    test: dict | None,
    curves,
    val_by_source: dict | None,
    excluded: list[dict] | None,
    objectives: dict | None,
    model_uri: str | None = None,
) -> None:
    """The run's report after its champion: test and budget summaries, the per-source and excluded tables,
    what the champion writes, and the pictures (``curves``: the run's curves image) — each a step of ``report``
    on its own."""
    final = _summary_metrics(conf, test, excluded, objectives)
    if final:
        report.step("summary metrics", tracker.log_metrics, final, 0, model_uri)
    tables = {
        "test_by_source.json": [
            {"source": k, **v} for k, v in ((test or {}).get("by_source") or {}).items()
        ],
        "val_by_source.json": [{"source": k, **v} for k, v in (val_by_source or {}).items()],
        "budget_excluded.json": excluded or [],
    }
    for name, rows in tables.items():
        if rows:
            report.step(name, tracker.log_table, rows, name)
    if hasattr(task, "samples"):  # what the champion writes, in the run summary
        report.step(
            "champion_samples.json",
            lambda: tracker.log_table(task.samples(result.champion), "champion_samples.json"),
        )
    report.step("curves.png", curves.finish, result.generations - 1)
    logbook = list(result.logbook)
    for name, draw in (
        ("species.png", lambda: plot_species(logbook, curves.title)),
        ("basins.png", lambda: plot_basins(basins, result.champion, curves.title)),
    ):
        report.step(name, log_picture, tracker, name, draw)


def log_picture(tracker: MlflowTracker, name: str, draw) -> None:
    fig = draw()
    if fig is not None:
        try:
            tracker.log_figure(fig, name)
        finally:
            close_figure(fig)
