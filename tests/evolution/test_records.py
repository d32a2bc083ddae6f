"""A generation's row and the lineage events carry only keys declared in ``evolution.records``: every strategy
(and speciation, a budgeted validation, an evaluator with figures of its own) run on a toy problem, each key
checked against the declaration of its kind."""

import typing

import numpy as np
import pytest

from evolora.evolution import Evolution, LoopParams, Observer, Validation
from evolora.evolution.records import (
    EVENT_KINDS,
    ROW_FAMILIES,
    BirthEvent,
    EvaluationEvent,
    GenerationRow,
    ValidationEvent,
)

from .test_strategies import LAYOUT, STRATEGIES, ev

EVENT_TYPES = {"birth": BirthEvent, "eval": EvaluationEvent, "validation": ValidationEvent}


class Collect(Observer):
    def __init__(self):
        self.rows, self.events = [], []

    def on_generation(self, row):
        self.rows.append(row)

    def on_events(self, events):
        self.events += events


class Pool:
    """An evaluator with figures of its own, as the Ray pool reports them."""

    def __call__(self, genomes, gen, batches=None):
        return [(f, {"distance": -f}) for f, _ in ev(genomes, gen, batches)]

    def describe(self):
        return {
            "ray_actors": 2.0,
            "ray_bytes_sent": 10.0,
            "ray_bytes_per_genome": 1.0,
            "ray_replaced": 0.0,
        }


def budgeted(g):
    value = ev([g], 0)[0][0]
    return Validation(
        value, admissible=value > -0.2, guards={"likelihood": value}, reason="left its budget"
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_key_a_strategy_emits_is_declared(name):
    seen = Collect()
    Evolution(
        LoopParams(generations=4, validate_every=1),
        None,
        np.zeros(LAYOUT.size, np.float32),
        Pool(),
        budgeted,
        seed=0,
        observers=[seen],
        strategy=STRATEGIES[name],
    ).run()
    declared = set(typing.get_type_hints(GenerationRow))
    for row in seen.rows:
        stray = [k for k in row if k not in declared and not k.startswith(ROW_FAMILIES)]
        assert not stray, f"{name}: row keys declared nowhere: {stray}"
    assert {
        "gen",
        "fit_best",
        "val",
        "val_champion",
        "term_distance",
        "val_likelihood",
        "ray_actors",
    } <= set(seen.rows[0])
    kinds = {e["event"] for e in seen.events}
    assert kinds == set(EVENT_KINDS), kinds
    for e in seen.events:
        keys = set(typing.get_type_hints(EVENT_TYPES[e["event"]]))
        assert set(e) <= keys, f"{name}: {e['event']} event keys declared nowhere: {set(e) - keys}"
        assert {"event", "gen", "id"} <= set(e)


def test_the_check_sees_an_undeclared_key():
    declared = set(typing.get_type_hints(GenerationRow))
    assert "fit_best" in declared and "colour" not in declared
    assert not "colour".startswith(ROW_FAMILIES)
