"""Re-run a finished trial from what the store recorded and compare, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from evolora.evolution.errors import ConfigError
from evolora.evolution.genome import genome_sha256
from evolora.orchestrator.study.sections import StudyConfig, resolved
from evolora.orchestrator.sweep.parent import best_trial
from evolora.orchestrator.sweep.record import BASE_CONFIG, TrialRecord
from evolora.orchestrator.sweep.sampling import trial_config
from evolora.orchestrator.sweep.storage import default_storage, open_existing_storage

__all__ = ["find_trial", "reproduce_trial", "Reproduction"]


def load_study_by_name(name: str, storage: str | None) -> optuna.Study:
    st = open_existing_storage(storage)
    if st is None:
        raise ConfigError(
            "STUDY",
            f"no Optuna storage at {default_storage()} yet (run a sweep, or pass --storage)",
            name,
        )
    names = [s.study_name for s in optuna.get_all_study_summaries(st)]
    if name not in names:
        raise ConfigError(
            "STUDY", f"no such study in the storage (has: {', '.join(names) or 'none'})", name
        )
    return optuna.load_study(study_name=name, storage=st)


def find_trial(study: optuna.Study, which: str) -> optuna.trial.FrozenTrial:
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if which == "best":
        if not done:
            raise ConfigError("--trial", "the study has no complete trial yet", which)
        return best_trial(study)
    if not which.isdigit() or int(which) >= len(study.trials):
        raise ConfigError(
            "--trial", f"expected 'best' or a trial number < {len(study.trials)}", which
        )
    t = study.trials[int(which)]
    if t.state != TrialState.COMPLETE:
        raise ConfigError("--trial", f"trial is {t.state.name}, not COMPLETE", which)
    return t


@dataclass
class Reproduction:
    rows: list[tuple[str, str, str]]  # (quantity, logged, reproduced)

    @property
    def identical(self) -> bool:
        return all(a == b for _, a, b in self.rows)


def reproduce_trial(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, progress: bool = True
) -> Reproduction:
    from evolora.orchestrator.run.trial import RunSettings, run_trial

    base = StudyConfig.model_validate(study.user_attrs[BASE_CONFIG])
    rec = TrialRecord.of(trial)
    stored = rec.config
    cfg = trial_config(base, trial.params, int(rec.seed), int(stored["model"]["threads"]))
    outcome = run_trial(cfg, RunSettings(track=False, progress=progress))
    r = outcome.result
    test_rows = []
    if outcome.test is not None:  # shown beside the reproduction; never part of the trial's value
        logged = rec.test or {}
        test_rows = [
            (f"test {k} (reported only)", repr(logged.get(k)), repr(outcome.test[k]))
            for k in ("base", "champion", "gain")
        ]
    objective_rows = []
    # a Pareto sweep's values: each objective on validation, for the champion
    if outcome.objectives:
        logged = rec.objectives or {}
        objective_rows = [
            (f"objective {k}", repr(logged.get(k, {}).get("champion")), repr(v["champion"]))
            for k, v in outcome.objectives.items()
        ]
    return Reproduction(
        [
            (
                "config (from params + seed)",
                "recorded",
                "recorded" if resolved(cfg) == stored else "differs",
            ),
            (
                "value (validation)",
                repr(rec.val_champion if rec.val_champion is not None else trial.values[0]),
                repr(r.champion_val),
            ),
            *objective_rows,
            ("best fitness", repr(rec.best_fitness), repr(r.best_fitness)),
            ("champion sha256", rec.champion_sha256 or "?", genome_sha256(r.champion)),
            *test_rows,
        ]
    )
