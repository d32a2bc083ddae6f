"""Conditional search spaces: parameters that belong to a strategy are sampled only when it is chosen."""

import optuna
import pytest

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.load import parse_study
from evolora.orchestrator.sweep.sampling import sample, trial_config

SPACE = {
    "evolution.strategy": {"type": "categorical", "choices": ["ga", "openai-es", "sep-cma-es"]},
    "evolution.crossover_prob": {
        "type": "float",
        "low": 0.0,
        "high": 0.9,
        "when": {"evolution.strategy": ["ga"]},
    },
    "evolution.tournament_size": {
        "type": "int",
        "low": 2,
        "high": 4,
        "when": {"evolution.strategy": ["ga"]},
    },
    "evolution.es.learning_rate": {
        "type": "float",
        "low": 0.001,
        "high": 0.05,
        "log": True,
        "when": {"evolution.strategy": ["openai-es"]},
    },
    "evolution.es.sigma": {
        "type": "float",
        "low": 0.005,
        "high": 0.1,
        "log": True,
        "when": {"evolution.strategy": ["openai-es", "sep-cma-es"]},
    },
    "evolution.speciation.enabled": {
        "type": "categorical",
        "choices": [True, False],
        "when": {"evolution.strategy": ["ga"]},
    },
    "evolution.speciation.target_species": {
        "type": "int",
        "low": 2,
        "high": 5,
        "when": {"evolution.speciation.enabled": [True]},
    },
}
GA_ONLY = {"evolution.crossover_prob", "evolution.tournament_size", "evolution.speciation.enabled"}


def test_parameters_are_sampled_only_for_the_strategy_that_uses_them():
    # the file's own strategy is openai-es: speciation entries are still valid where they are sampled (ga)
    cfg = parse_study({"evolution": {"population": 8, "strategy": "openai-es"}, "search": SPACE})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        values = sample(trial, cfg)
        strategy = values["evolution.strategy"]
        seen.add(strategy)
        assert set(trial.params) == set(values)
        assert (GA_ONLY & set(values) == GA_ONLY) == (strategy == "ga")
        assert ("evolution.es.learning_rate" in values) == (strategy == "openai-es")
        assert ("evolution.es.sigma" in values) == (strategy != "ga")
        assert ("evolution.speciation.target_species" in values) == (
            values.get("evolution.speciation.enabled") is True
        )
        # every sampled combination is a valid config
        resolved = trial_config(cfg, trial.params, 1, 1)
        assert resolved.evolution.strategy == strategy
        study.tell(trial, 0.0)
    assert seen == {"ga", "openai-es", "sep-cma-es"}


@pytest.mark.parametrize(
    "when, msg",
    [
        ({"evolution.nope": ["ga"]}, "not a config path"),
        ({"evolution.strategy": []}, "at least one value"),
    ],
)
def test_bad_conditions_name_the_entry(when, msg):
    space = {
        "evolution.strategy": SPACE["evolution.strategy"],
        "evolution.crossover_prob": {**SPACE["evolution.crossover_prob"], "when": when},
    }
    with pytest.raises(ConfigError, match=rf"^search\.evolution\.crossover_prob\.when.*{msg}"):
        parse_study({"search": space})


def test_a_condition_on_a_later_entry_is_refused():
    space = {
        "evolution.crossover_prob": SPACE["evolution.crossover_prob"],
        "evolution.strategy": SPACE["evolution.strategy"],
    }
    with pytest.raises(ConfigError, match=r"must come after"):
        parse_study({"search": space})
