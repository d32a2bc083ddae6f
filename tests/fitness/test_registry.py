"""The fitness-term registry, and the contract every registered term meets (one suite over all of them)."""

import math
import re

import numpy as np
import pytest

from evolora.evolution.errors import RegistryError
from evolora.fitness import FITNESS_TERMS, FitnessTerm, PairOutputs, Registry, TextExample

# the arguments a term needs to be built (terms without required arguments take none)
PARAMS = {"keyword": {"keywords": ["cat"]}}


class _CausalSample:
    """The parts of CausalOutputs a term may read, precomputed: two examples, two generations."""

    examples = [TextExample("The", " cat sat.", "cat sat."), TextExample("A", " dog ran.", "a dog")]
    logprobs = np.array([-2.0, -4.0])
    generations = ["cat sat.", "the dog the dog"]
    generated_examples = examples  # one completion a prompt
    kl = 0.25


SAMPLES = {
    "pairs": PairOutputs(
        cos=np.array([0.1, 0.5, 0.9, 0.4]),
        gold=np.array([0.5, 2.5, 4.5, 3.0]),
        score_range=(0.0, 5.0),
    ),
    "causal": _CausalSample(),
}
EXPECTED = {
    "stsb_spearman": 0.8,
    "stsb_neg_mse": -np.mean(
        (np.array([0.1, 0.5, 0.9, 0.4]) - np.array([0.1, 0.5, 0.9, 0.6])) ** 2
    ),
    "stsb_pearson": float(np.corrcoef([0.1, 0.5, 0.9, 0.4], [0.5, 2.5, 4.5, 3.0])[0, 1]),
    "likelihood": -3.0,
    "keyword": 0.5,
    "exact_match": 0.5,
    "distinct_n": 3 / 4,
    "kl_to_base": -0.25,
}


# judged by a second model: each checked against stock transformers in tests/fitness/test_judges.py
JUDGED = {"judge_similarity", "judge_classifier"}


def test_every_built_in_term_is_covered_here():
    from evolora.fitness.registry import BUILT_IN

    assert {n for n in FITNESS_TERMS.names() if FITNESS_TERMS.origin(n) == BUILT_IN} == set(
        EXPECTED
    ) | JUDGED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_term_contract(name):
    cls = FITNESS_TERMS.get(name)
    assert issubclass(cls, FitnessTerm) and cls.task in SAMPLES and cls.__doc__
    value = cls(**PARAMS.get(name, {}))(SAMPLES[cls.task])
    assert isinstance(value, float) and math.isfinite(value)
    assert abs(value - EXPECTED[name]) < 1e-12, (name, value)


def test_registry_rejects_duplicates_and_malformed_names_and_lists_known_ones():
    reg = Registry("widget")
    reg.register("alpha")(object)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha")(object)
    for bad in ("Alpha", "1x", "a-b", "", None):
        with pytest.raises(RegistryError, match="must match"):
            reg.register(bad)
    reg.register("beta")(int)
    with pytest.raises(RegistryError, match=r"unknown widget 'gamma'; known: alpha, beta"):
        reg.get("gamma")
    assert reg.get("beta") is int and "alpha" in reg and reg.names() == ["alpha", "beta"]
    with pytest.raises(RegistryError, match="already registered"):
        FITNESS_TERMS.register("likelihood")(FitnessTerm)


def test_term_arguments_are_checked():
    with pytest.raises(ValueError, match="keywords"):
        FITNESS_TERMS.get("keyword")()
    with pytest.raises(ValueError, match="n must be"):
        FITNESS_TERMS.get("distinct_n")(n=0)


@pytest.mark.parametrize(
    "params,says",
    [
        ({"keywords": []}, "needs `keywords` or `regex`"),
        ({"regex": "(unclosed"}, "not a valid regular expression"),
        ({"keywords": ["a"], "regex": "[z-a]"}, "not a valid regular expression"),
    ],
)
def test_bad_reward_config_is_a_config_error_naming_the_field(params, says):
    from evolora.evolution.errors import ConfigError
    from evolora.fitness.spec import make_terms

    with pytest.raises(ConfigError, match=r"^fitness\.terms\.0\.params: .*" + re.escape(says)):
        make_terms([("keyword", 1.0, params)], "causal")


def test_one_table_of_base_model_aliases():
    """Every alias a study may name is in fitness/aliases.py: each packaged one has its hub id and package,
    each built one its builder, and a study file's check reads the same table (no torch needed for it)."""
    from evolora.fitness.aliases import ALIASES, BUILT, HUB_IDS, PACKAGES
    from evolora.fitness.lfm2 import BUILDERS

    assert set(HUB_IDS) == set(PACKAGES) and tuple(BUILDERS) == BUILT
    assert set(ALIASES) == set(PACKAGES) | set(BUILT) and len(ALIASES) == len(set(ALIASES))
