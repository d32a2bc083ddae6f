"""A replica rebuilds every generation of a mean strategy bit for bit from the fitness values and the draw's
generator state, and the wire format round-trips data only."""

import numpy as np
import pytest

from evolora.evolution import Evolution, LoopParams, Observer
from evolora.evolution.checkpoint import CheckpointError, pack, unpack
from evolora.evolution.replica import Replica, digest, replayable

from .test_strategies import STRATEGIES, ev, val

MEAN_STRATEGIES = [
    n for n in STRATEGIES if n.startswith(("openai-es", "sep-cma", "snes", "asktell"))
]


class Mirror(Observer):
    """Drives a replica beside the loop: synced at generation 0 (and at ``resync``), advanced after."""

    def __init__(self, name, resync=()):
        self.name, self.resync, self.loop, self.replica, self.seen = (
            name,
            set(resync),
            None,
            None,
            [],
        )

    def bind(self, loop):
        self.loop = loop
        self.replica = Replica(STRATEGIES[self.name])

    def on_population(self, gen, population):
        s = self.loop.strategy
        if gen == 0 or gen in self.resync:
            state = unpack(pack(s.replica_state()))  # as it travels: without the generation's draws
            pop = self.replica.sync(state, unpack(pack(s.draw_state)), gen)
        else:
            pop = self.replica.advance(self.fitness, s.draw_state, gen)
        self.seen.append([digest(g) for g in pop] == [digest(g) for g in population])
        self.fitness = [ind.fitness.values[0] for ind in population]


@pytest.mark.parametrize("name", MEAN_STRATEGIES)
def test_a_replica_rebuilds_every_generation_bit_for_bit(name):
    mirror = Mirror(name, resync={4})
    loop = Evolution(
        LoopParams(generations=8),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        3,
        [mirror],
        strategy=STRATEGIES[name],
    )
    loop.run()
    assert replayable(loop.strategy)
    assert mirror.seen == [True] * 8


def test_the_ga_is_not_replayed():
    loop = Evolution(
        LoopParams(generations=2),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        3,
        [],
        strategy=STRATEGIES["ga"],
    )
    loop.run()
    assert not replayable(loop.strategy)


def test_a_replica_refuses_to_advance_from_a_generation_it_does_not_hold():
    r = Replica(STRATEGIES["openai-es"])
    with pytest.raises(ValueError, match="replica holds generation None"):
        r.advance([0.0] * 12, np.random.default_rng(0).bit_generator.state, 3)


def test_pack_round_trips_nested_data_and_refuses_anything_else():
    state = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": [1, 2.5, None, "x"],
        "t": (np.int64(3),),
        "big": 2**100,
        "d": {"k": np.zeros(0)},
    }
    back = unpack(pack(state))
    assert back["a"].tobytes() == state["a"].tobytes() and back["a"].shape == (2, 3)
    assert (
        back["b"] == state["b"]
        and back["t"] == (3,)
        and back["big"] == 2**100
        and back["d"]["k"].size == 0
    )
    data = pack(state)
    for bad in (data[:-3], data + b"x", b"\x00" * 4, data.replace(b"<f4", b"|O8", 1)):
        with pytest.raises(CheckpointError):
            unpack(bad)
