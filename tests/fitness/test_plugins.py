"""Fitness terms from the user's own code: TRL-style rewards and encoder pair metrics, registered from Python
or found as an installed package's entry points; every bad plug-in case says what went wrong."""

import json
import math
import re

import numpy as np
import pytest

import evolora
from evolora.evolution.errors import ConfigError, RegistryError
from evolora.fitness import (
    FITNESS_TERMS,
    FitnessTermError,
    PairOutputs,
    Pairs,
    build_task,
)
from evolora.fitness.causal import TextExample
from evolora.fitness.plugins import term_class

from ..conftest import STSB, make_spec


# --- written exactly as TRL's GRPOTrainer documentation writes reward functions --------------------------
def reward_len(completions, **kwargs):
    return [-abs(20 - len(completion)) for completion in completions]


def reward_func(completions, ground_truth, **kwargs):
    # Regular expression to capture content inside \boxed{}
    matches = [re.search(r"\\boxed\{(.*?)\}", completion) for completion in completions]
    contents = [match.group(1) if match else "" for match in matches]
    # Reward 1 if the content is the same as the ground truth, 0 otherwise
    return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]


# ---------------------------------------------------------------------------------------------------------


@pytest.fixture()
def registered():
    """Register terms for one test, forget them after it."""
    names = []

    def add(kind, name, fn, **kw):
        (evolora.register_reward if kind == "causal" else evolora.register_pair_metric)(
            name, fn, **kw
        )
        names.append(name)

    yield add
    for n in names:
        FITNESS_TERMS.unregister(n)


def test_trl_reward_functions_drive_a_causal_task_unchanged(tmp_path, tiny, registered):
    registered("causal", "trl_len", reward_len)
    registered("causal", "trl_boxed", reward_func)
    rows = [
        {"prompt": p, "ground_truth": gt}
        for p, gt in [
            ("A man is", ""),
            ("The cat", "7"),
            ("Stocks", ""),
            ("News:", "x"),
            ("A woman", ""),
        ]
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = make_spec(
        base=str(tiny),
        kind="causal",
        train_path=str(tmp_path / "train.jsonl"),
        dev_path=str(tmp_path / "train.jsonl"),
        train_subset=None,
        batch_size=2,
        rank=2,
        alpha=4.0,
        target_modules=("q_proj", "v_proj"),
        max_new_tokens=5,
        terms=(("trl_len", 1.0), ("trl_boxed", 0.5)),
        validation="trl_boxed",
    )
    task = build_task(spec)
    genome = task.seed_genome() + np.random.default_rng(0).normal(0, 0.2, task.layout.size).astype(
        np.float32
    )
    ((fit, terms),) = task.evaluate([genome], gen=0)
    task.write(genome)
    gens = task.evaluator.generate(task.train_batch(0), 5)  # the same texts, generated directly
    assert terms["trl_len"] == pytest.approx(np.mean(reward_len(gens)))
    # the ground_truth column reached the function row by row: "" matches a completion without \boxed{}
    assert terms["trl_boxed"] == pytest.approx(3 / 5)
    assert fit == pytest.approx(terms["trl_len"] + 0.5 * terms["trl_boxed"])
    assert task.validate(genome) == pytest.approx(3 / 5)


class _Causal:
    """What a causal term reads: examples (with an extra column), generations, their token ids."""

    examples = [
        TextExample("A", " b.", "b", {"level": 1}),
        TextExample("C", " d.", None, {"level": 2}),
    ]
    generations = ["one two.", "three"]
    generated_examples = examples  # one completion a prompt
    completion_ids = [[5, 6], [7]]


def test_the_data_and_params_reach_a_reward_and_none_means_no_opinion():
    seen = {}

    def fn(prompts, completions, completion_ids, level, target, scale=1.0, **kwargs):
        seen.update(
            prompts=prompts,
            ids=completion_ids,
            level=level,
            target=target,
            answer=kwargs.get("answer"),
        )
        return [scale * len(completions[0]), None]

    term = term_class("probe", fn, "test")(scale=2.0)
    # the mean over the values given: None is left out
    assert term.task == "causal" and term(_Causal()) == 16.0
    assert seen == {
        "prompts": ["A", "C"],
        "ids": [[5, 6], [7]],
        "level": [1, 2],
        "target": [" b.", " d."],
        "answer": ["b", None],
    }
    per = term_class(
        "per", lambda prompt, completion, level, **kw: level * len(completion), "test"
    )()
    assert per(_Causal()) == (1 * 8 + 2 * 5) / 2
    with pytest.raises(
        ValueError,
        match=r"probe takes no parameter 'scael' \(its own keyword arguments: level, scale\)",
    ):
        term_class("probe", fn, "test")(scael=2.0)


@pytest.mark.parametrize(
    "returns,says",
    [
        ([1.0], r"returned 1 values for 2 completions"),
        ([1.0, float("nan")], r"returned nan for completion 1: not finite"),
        ([math.inf, 0.0], r"returned inf for completion 0: not finite"),
        (["good", 1.0], r"returned 'good' for completion 0: not a number"),
        (0.5, r"returned 0.5: expected one value per completion \(2\)"),
        ([None, None], r"gave no value \(only None\) for any of the 2 completions"),
    ],
)
def test_a_bad_reward_value_names_the_term_and_what_it_returned(returns, says):
    term = term_class("bad_reward", lambda completions, **kw: returns, "test")()
    with pytest.raises(FitnessTermError, match=r"fitness term 'bad_reward' " + says):
        term(_Causal())


def test_a_reward_that_raises_names_the_term_and_the_error():
    def judge(completions, **kwargs):
        raise ConnectionError("judge at http://127.0.0.1:9 refused")

    with pytest.raises(
        FitnessTermError, match=r"fitness term 'judge' \(test\) raised ConnectionError: judge at"
    ):
        term_class("judge", judge, "test")()(_Causal())


def _pairs_out():
    pairs = Pairs(
        ("a", "b", "c"),
        ("x", "y", "z"),
        np.array([0.0, 2.5, 5.0]),
        (),
        {"lang": ("en", "de", "en")},
    )
    emb = np.eye(3, dtype=np.float32)
    return PairOutputs(np.array([0.1, 0.5, 0.9]), pairs.gold, pairs, emb, emb[::-1].copy())


def test_pair_metrics_batch_and_per_pair_read_cosines_gold_texts_embeddings_and_columns():
    seen = {}

    def batch(cosines, score, sentence1, embeddings1, lang, **kwargs):
        seen.update(s1=sentence1, lang=lang, e=embeddings1.shape, s2=kwargs["sentence2"])
        return float(np.corrcoef(cosines, score)[0, 1])

    term = term_class("pair_batch", batch, "test")
    assert term.task == "pairs" and term()(_pairs_out()) == pytest.approx(1.0)
    assert seen == {
        "s1": ["a", "b", "c"],
        "lang": ["en", "de", "en"],
        "e": (3, 3),
        "s2": ["x", "y", "z"],
    }
    per = term_class(
        "pair_one",
        lambda cosine, score, embedding1, embedding2, **kw: (
            -abs(cosine - score / 5) + float(embedding1 @ embedding2)
        ),
        "test",
    )()
    assert per(_pairs_out()) == pytest.approx(np.mean([-0.1, 0.0 + 1.0, -0.1]))
    out = _pairs_out().take(np.array([True, False, True]))  # per-source figures subset every part
    assert out.pairs.columns["lang"] == ("en", "en") and out.emb1.shape == (2, 3)
    with pytest.raises(
        FitnessTermError, match=r"'pair_batch' returned \[1, 2\] for the batch: not a number"
    ):
        term_class("pair_batch", lambda cosines, **kw: [1, 2], "test")()(_pairs_out())


def test_registering_checks_names_and_duplicates(registered):
    registered("causal", "my_len", reward_len)
    with pytest.raises(
        RegistryError,
        match=r"'my_len' is already registered \(python tests\.fitness\.test_plugins\.reward_len\)",
    ):
        evolora.register_reward("my_len", reward_len)
    with pytest.raises(RegistryError, match="already registered"):
        evolora.register_reward("likelihood", reward_len)
    with pytest.raises(RegistryError, match="must match"):
        evolora.register_reward("My-Len", reward_len)
    with pytest.raises(RegistryError, match="must be callable"):
        evolora.register_reward("not_callable", 3)


def test_a_study_names_a_registered_term_and_its_params_are_checked_at_load(tmp_path, registered):
    registered(
        "pairs",
        "pair_corr",
        lambda cosines, score, floor=0.0, **kw: max(
            floor, float(np.corrcoef(cosines, score)[0, 1])
        ),
    )
    study = {
        "name": "p",
        "data": {"train_path": str(STSB / "sts-train.csv")},
        "fitness": {"terms": [{"name": "pair_corr", "params": {"floor": 0.1}}]},
    }
    assert evolora.study(study).fitness.terms[0].name == "pair_corr"
    with pytest.raises(
        ConfigError, match=r"^fitness\.terms\.0\.params: pair_corr takes no parameter 'flor'"
    ):
        evolora.study(
            {**study, "fitness": {"terms": [{"name": "pair_corr", "params": {"flor": 0.1}}]}}
        )
    with pytest.raises(
        ConfigError,
        match=r"^fitness\.terms\.0\.name: scores 'pairs' tasks, this study is a 'causal'",
    ):
        evolora.study(
            {
                **study,
                "model": {"kind": "causal"},
                "data": {
                    "train_path": str(STSB / "sts-train.csv"),
                    "dev_path": str(STSB / "sts-dev.csv"),
                },
            }
        )
    with pytest.raises(
        ConfigError, match=r"^validation\.metric: unknown term; known: .*pair_corr.*stsb_spearman"
    ):
        evolora.study({**study, "validation": {"metric": "pair_cor"}})
