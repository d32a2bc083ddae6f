"""What a run says about itself in MLflow: its name, its note (what each metric means) and its datasets."""

from __future__ import annotations

from evolora.orchestrator.study.sections import StudyConfig
from evolora.orchestrator.tracking.runlog import MlflowTracker

__all__ = ["default_run_name", "run_note", "log_datasets"]


def default_run_name(cfg: StudyConfig) -> str:
    """Runs of one study told apart in the MLflow table: study, strategy, seed."""
    return f"{cfg.name}-{cfg.evolution.strategy}-s{cfg.seed}"


def run_note(cfg: StudyConfig) -> str:
    v = cfg.validation.metric
    return (
        f"**{cfg.name}**: {cfg.evolution.strategy}, population {cfg.evolution.population}, "
        f"{cfg.evolution.generations} generations, LoRA rank {cfg.lora.rank} on {cfg.model.base}.\n\n"
        f"* `fit_*`: fitness on the train batch"
        f"{', redrawn every generation (it zig-zags by design)' if cfg.data.rotate else ''}.\n"
        f"* `val`, `val_champion`, `val_base`: {v} on the validation split every {cfg.validation.every} "
        f"generation(s); the champion is the best on validation.\n"
        + (
            f"* `test_*`: {v} on the test split, scored once at the end; it chose nothing.\n"
            if cfg.data.test_path
            else ""
        )
        + "* The champion is logged as an MLflow model (`model`) and as a stock PEFT adapter (`adapter/`)."
    )


def log_datasets(tracker: MlflowTracker, cfg: StudyConfig, task) -> None:
    """Train, validation and (when there is one) test split as the run's dataset inputs."""
    import pandas as pd

    d = cfg.data
    sources = {
        "train": d.train_path,
        "validation": d.train_path if d.val_fraction is not None else d.dev_path,
        "test": d.test_path,
    }
    splits = {k: (pd.DataFrame(rows), sources[k]) for k, rows in task.split_records().items()}
    tracker.log_datasets(splits)
