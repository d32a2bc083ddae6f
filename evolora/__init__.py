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

import copy
from collections.abc import Callable, Sequence
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
    "StudyConfig",
    "RunOutcome",
    "RunResult",
    "AskTell",
    "studies",
]

_LAZY = {  # name → module: loaded when first used, so `import evolora` stays light
    "StudyConfig": "evolora.orchestrator.study.sections",
    "RunOutcome": "evolora.orchestrator.run.outcome",
    "RunResult": "evolora.evolution.loop",
    "AskTell": "evolora.evolution.asktell",
}


def __getattr__(name: str):
    if name == "studies":
        import evolora.studies as studies

        return studies
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evolora' has no attribute {name!r}")


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


def _registered(rewards: Sequence[Callable] | Callable) -> list[str]:
    """Each function registered as a fitness term under its ``__name__`` (the same function again is fine;
    another one under a taken name is a RegistryError); their names."""
    from evolora.fitness.plugins import _origin_of, term_class

    fns = [rewards] if callable(rewards) else list(rewards)
    if not fns:
        raise ConfigError("rewards", "give at least one function", fns)
    names = []
    for fn in fns:
        name = getattr(fn, "__name__", None)
        if not callable(fn) or not name or name == "<lambda>":
            raise ConfigError("rewards", "expected named functions (def f(...)), not lambdas", fn)
        if name not in FITNESS_TERMS:
            cls = term_class(name, fn, _origin_of(fn))
            FITNESS_TERMS.add(name, cls, cls.origin)
        elif getattr(FITNESS_TERMS.get(name), "fn", None) is not fn:
            from evolora.evolution.errors import RegistryError

            raise RegistryError(
                f"a fitness term named {name!r} is already registered ({FITNESS_TERMS.origin(name)}): "
                "rename the function"
            )
        names.append(name)
    return names


def _with_rewards(raw: dict, names: list[str]) -> dict:
    """The study with its reward replaced: the first fitness term (the study's reward) becomes ``names[0]``,
    the others are added after the study's own terms (whose places a ``search:`` may name), weight 1 each; the
    validation metric, and a sweep objective that was it, become ``names[0]``."""
    raw = copy.deepcopy(raw)
    fitness = raw.setdefault("fitness", {})
    own = list(fitness.get("terms") or [])
    mine = [{"name": n, "weight": 1.0, "params": {}} for n in names]
    fitness["terms"] = [mine[0], *own[1:], *mine[1:]]
    validation = raw.setdefault("validation", {})
    old = validation.get("metric")
    validation.update(metric=names[0], params={})
    for objective in (raw.get("sweep") or {}).get("objectives") or []:
        if isinstance(objective, dict) and objective.get("metric") == old:
            objective.update(metric=names[0], params={})
    return raw


def study(
    source: str | Path | dict | StudyConfig,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    base_dir: str | Path = ".",
    *,
    rewards: Sequence[Callable] | Callable = (),
) -> StudyConfig:
    """A validated study from a YAML file, a shipped study's name (``"quickstart"``, ``"lfm2-reward"``: see
    :mod:`evolora.studies`), a dict shaped like one (relative paths from ``base_dir``) or a config, with
    ``--set``-style ``overrides`` ("evolution.generations=5"). ``rewards``: functions (TRL's reward signature
    for a causal study, a pair metric for an encoder one) that replace the study's reward — its first fitness
    term, its validation metric and the sweep objective that was it — each with weight 1, the study's other
    terms (a KL guard) kept; as TRL's ``GRPOTrainer`` takes ``reward_funcs``::

        def mentions_guitar(prompts, completions, **kwargs):
            return [float("guitar" in c) for c in completions]

        cfg = evolora.study("lfm2-reward", rewards=[mentions_guitar])
    """
    from evolora.orchestrator.study.load import load_study, parse_study
    from evolora.orchestrator.study.sections import StudyConfig, resolved

    # list("a=1") would be three overrides of one character each
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(
            "overrides",
            "expected a list of PATH=VALUE strings, got one string (write [...])",
            overrides,
        )
    if rewards:
        names = _registered(rewards)
        if isinstance(source, StudyConfig):
            source = resolved(source)
        elif not isinstance(source, dict):
            from evolora.orchestrator.study.load import load_raw, shipped_or_file

            base_dir, source = shipped_or_file(source).resolve().parent, load_raw(source)
        source = _with_rewards(source, names)
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
    rewards: Sequence[Callable] | Callable = (),
    callbacks: Sequence[Callable[[dict], bool | None]] = (),
    time_budget: float | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    base_dir: str | Path = ".",
) -> RunOutcome:
    """Evolve one adapter, as ``evolora run`` does: one MLflow run (``tracking_uri``, default
    ``$MLFLOW_TRACKING_URI``, else ./mlruns/). ``source``, ``overrides``, ``rewards``: as :func:`study`.
    Returns a :class:`~evolora.orchestrator.run.outcome.RunOutcome`: ``result`` (champion genome, its
    validation, the logbook), ``test``, ``run_id``, ``model_uri``.

    ``callbacks``: functions called with each generation's row (``gen``, ``fit_best``, ``val`` when it was
    validated, ``val_champion``, …); one that returns True stops the run. ``time_budget``: seconds of
    evolution (model loading aside) after which it stops. A stop ends the run after one more generation,
    validated like a last one, so the champion is still chosen on validation::

        def patience(row, best=[float("-inf")], since=[0]):  # stop after 5 validations without a gain
            if "val" in row:
                since[0] = 0 if row["val"] > best[0] else since[0] + 1
                best[0] = max(best[0], row["val"])
            return since[0] >= 5

        evolora.run("quickstart", callbacks=[patience], time_budget=600)
    """
    from evolora.orchestrator.cli.preflight import check_tracking_uri

    check_tracking_uri(tracking_uri, "tracking_uri")
    if time_budget is not None and not time_budget > 0:
        raise ConfigError("time_budget", "must be > 0 seconds", time_budget)
    if not all(callable(cb) for cb in callbacks):
        raise ConfigError("callbacks", "expected functions of a generation's row", list(callbacks))
    cfg = study(source, overrides, seed, base_dir, rewards=rewards)
    from evolora.orchestrator.run.observers import Callbacks
    from evolora.orchestrator.run.trial import RunSettings, run_trial

    hooks = [Callbacks(callbacks, time_budget)] if callbacks or time_budget is not None else []
    return run_trial(cfg, RunSettings(tracking_uri=tracking_uri, progress=progress), hooks)


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
    rewards: Sequence[Callable] | Callable = (),
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
    if rewards and workers > 1:
        raise ConfigError(
            "rewards",
            "reach only this process; with workers > 1 register them at module level "
            "(evolora.register_reward) or in an installed package, and name them in the study",
            workers,
        )
    cfg = study(source, overrides, None, base_dir, rewards=rewards)
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
