"""evolora's Python API: bring your own fitness terms, then run or sweep a study from a script.

>>> import evolora
>>> @evolora.reward
... def mentions_guitar(prompts, completions, **kwargs):     # TRL's reward-function convention
...     return [1.0 if "guitar" in c else 0.0 for c in completions]
>>> evolora.register_reward("mentions_guitar", mentions_guitar)         # doctest: +SKIP
>>> outcome = evolora.run("studies/my-study.yaml", overrides=["evolution.generations=5"])  # doctest: +SKIP

A study file names the term (``fitness.terms: [{name: mentions_guitar}]``); it never names code to import.
Installed packages can declare terms instead, under the entry-point group ``evolora.fitness``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evolora.evolution.errors import ConfigError, EvoloraError
from evolora.fitness.plugins import (
    ENTRY_POINT_GROUP,
    FITNESS_TERMS,
    FitnessTermError,
    describe_terms,
    pair_metric,
    register_fitness,
    register_pair_metric,
    register_reward,
    reward,
)
from evolora.fitness.registry import FitnessTerm

if TYPE_CHECKING:
    import optuna

    from evolora.orchestrator.run.outcome import RunOutcome
    from evolora.orchestrator.study.sections import StudyConfig

__all__ = [
    "__version__",
    "reward",
    "pair_metric",
    "register_reward",
    "register_pair_metric",
    "register_fitness",
    "FitnessTerm",
    "terms",
    "study",
    "run",
    "sweep",
    "export",
    "ConfigError",
    "EvoloraError",
    "FitnessTermError",
    "ENTRY_POINT_GROUP",
    "FITNESS_TERMS",
]


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("evolora")
    except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "0+unknown"


__version__ = _version()


def terms() -> list[dict]:
    """Every registered fitness term: name, task, where it comes from, its params and a line of its doc."""
    return describe_terms()


def study(
    source: str | Path | dict | StudyConfig,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    base_dir: str | Path = ".",
) -> StudyConfig:
    """A validated study from a YAML file, a dict shaped like one (relative paths from ``base_dir``) or a
    config, with ``--set``-style ``overrides`` ("evolution.generations=5")."""
    from evolora.orchestrator.study.load import load_study, parse_study
    from evolora.orchestrator.study.sections import StudyConfig, resolved

    # list("a=1") would be three overrides of one character each
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(
            "overrides",
            "expected a list of PATH=VALUE strings, got one string (write [...])",
            overrides,
        )
    if isinstance(source, StudyConfig):
        return (
            parse_study(resolved(source), Path(base_dir), list(overrides), seed)
            if overrides or seed is not None
            else source
        )
    if isinstance(source, dict):
        return parse_study(source, Path(base_dir).resolve(), list(overrides), seed)
    return load_study(source, list(overrides), seed)


def run(
    source: str | Path | dict | StudyConfig,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
    base_dir: str | Path = ".",
) -> RunOutcome:
    """Evolve one adapter, as ``evolora run`` does: one MLflow run (``tracking_uri``, default ./mlruns/).
    Returns the outcome: ``result`` (champion genome, validation), ``test``, ``run_id``, ``model_uri``."""
    from evolora.orchestrator.cli.preflight import check_tracking_uri

    check_tracking_uri(tracking_uri, "tracking_uri")
    cfg = study(source, overrides, seed, base_dir)
    from evolora.orchestrator.run.trial import RunSettings, run_trial

    return run_trial(cfg, RunSettings(tracking_uri=tracking_uri, progress=progress))


def sweep(
    source: str | Path | dict | StudyConfig,
    n_trials: int,
    overrides: Sequence[str] = (),
    *,
    workers: int = 1,
    storage: str | None = None,
    tracking_uri: str | None = None,
    timeout: float | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = True,
    base_dir: str | Path = ".",
) -> optuna.Study:
    """Tune the evolution over the study's ``search:``, as ``evolora sweep`` does; returns the Optuna study.
    With ``workers`` > 1 the workers are new processes: terms they need must be registered at import of the
    script (module level) or come from an installed package's entry point."""
    from evolora.orchestrator.cli.preflight import (
        check_storage,
        check_timeout,
        check_tracking_uri,
        check_workers,
    )

    if n_trials < 1:
        raise ConfigError("n_trials", "must be ≥ 1", n_trials)
    check_workers(workers, n_trials)
    check_timeout(timeout)
    check_storage(storage, "storage")
    check_tracking_uri(tracking_uri, "tracking_uri")
    cfg = study(source, overrides, None, base_dir)
    from evolora.orchestrator.sweep.context import SweepContext
    from evolora.orchestrator.sweep.launch import run_sweep

    return run_sweep(
        SweepContext(
            cfg,
            n_trials,
            storage,
            tracking_uri,
            workers,
            timeout,
            checkpoint_dir,
            progress=progress,
        )
    )


def export(run_id: str, out: str | Path, tracking_uri: str | None = None) -> Path:
    """Write a run's champion as a stock PEFT adapter directory (``PeftModel.from_pretrained`` loads it)."""
    from evolora.orchestrator.run.export import export_run
    from evolora.orchestrator.tracking.runlog import default_tracking_uri

    return Path(export_run(run_id, str(out), tracking_uri or default_tracking_uri()))
