"""The bench's peers as evolora strategies: thin ask/tell adapters over EvoTorch's public API, so a general
library's optimiser runs inside evolora's loop — its validation and champion, lineage, data-only checkpoints
with exact resume, tracking, sweeps and Ray replicas — and a study can name it (``evolution.strategy:
evotorch-snes``; needs ``pip install 'evolora[bench]'``).

* ``evotorch-snes``  EvoTorch's SNES: its ``ExpSeparableGaussian`` samples, and its ``compute_gradients`` (NES
                     utilities) and ``update_parameters`` move the centre and the per-gene σ, at SNES's defaults
                     (population 4 + ⌊3 ln n⌋, centre rate 1, σ rate 0.2 (3 + ln n) / √n); one update equals
                     ``evotorch.algorithms.SNES.step`` on the same samples (tests/test_peer_strategies.py).
* ``evotorch-pgpe``  EvoTorch's functional PGPE (``pgpe``, ``pgpe_ask``, ``pgpe_tell``) with ClipUp, symmetric
                     sampling and centred ranking, proportioned as EvoTorch's MuJoCo examples (initial radius
                     18 × ClipUp's max speed, centre rate half of it, σ rate 0.1).

The library's own sampling draws from a ``torch.Generator`` seeded from the trial's generator each generation,
so a generation is a function of the strategy's state and the trial generator's state: same seed, same run,
and a replica rebuilds it. State is arrays (float32 tensors as numpy), checkpointed as data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evolora.evolution import AskTell
from evolora.evolution.errors import ConfigError
from evolora.evolution.options import option

__all__ = ["EvoTorchSNES", "EvoTorchPGPE", "RADIUS_PER_SPEED", "snes_popsize"]

RADIUS_PER_SPEED = 18.0  # EvoTorch's MuJoCo examples: radius_init 0.27 for max_speed 0.015


def _torch():
    try:
        import evotorch  # noqa: F401
        import torch
    except ImportError:  # pragma: no cover - the bench extra is installed in the tests
        raise ConfigError(
            "evolution.strategy", "needs EvoTorch: pip install 'evolora[bench]'", "evotorch-*"
        ) from None
    return torch


def _generator(rng: np.random.Generator):
    """A torch generator seeded from the trial's generator: the library's draws, reproducible and replayable."""
    torch = _torch()
    return torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))


def snes_popsize(n: int) -> int:
    """EvoTorch's SNES population for ``n`` genes: 4 + ⌊3 ln n⌋."""
    return int(4 + math.floor(3 * math.log(n)))


@dataclass(frozen=True)
class SNESParams:
    stdev_init: float = option(0.03, "initial standard deviation of every gene", gt=0)
    popsize: int = option(0, "samples per generation; 0: EvoTorch's default 4 + ⌊3 ln n⌋", ge=0)
    center_learning_rate: float = option(1.0, "SNES's centre rate", gt=0)
    stdev_learning_rate: float = option(
        0.0, "SNES's σ rate; 0: EvoTorch's default 0.2 (3 + ln n) / √n", ge=0
    )


class EvoTorchSNES(AskTell):
    """EvoTorch's SNES through its distribution's public API (sample, compute_gradients, update_parameters)."""

    name, Params, state = "evotorch-snes", SNESParams, ("mu", "sigma")
    algorithm = "SNES"  # EvoTorch's name for it

    def start(self, x0: np.ndarray) -> None:
        _torch()
        n = x0.size
        self.mu = np.asarray(x0, np.float32).copy()
        self.sigma = np.full(n, self.p.stdev_init, np.float32)
        self.n_samples = self.p.popsize or snes_popsize(n)
        self.rates = {
            "mu": self.p.center_learning_rate,
            "sigma": self.p.stdev_learning_rate or 0.2 * (3 + math.log(n)) / math.sqrt(n),
        }

    def _distribution(self):
        torch = _torch()
        from evotorch.distributions import ExpSeparableGaussian

        return ExpSeparableGaussian(
            {"mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma)},
            dtype=torch.float32,
        )

    def ask(self) -> np.ndarray:
        samples = self._distribution().sample(self.n_samples, generator=_generator(self.rng))
        return samples.numpy()

    def tell(self, genomes: np.ndarray, fitness: np.ndarray) -> np.ndarray:
        torch = _torch()
        dist = self._distribution()
        grads = dist.compute_gradients(
            torch.from_numpy(np.asarray(genomes, np.float32)),
            torch.as_tensor(fitness, dtype=torch.float32),
            objective_sense="max",
            ranking_method="nes",
        )
        new = dist.update_parameters(grads, learning_rates=self.rates).parameters
        self.mu, self.sigma = new["mu"].numpy().copy(), new["sigma"].numpy().copy()
        return self.mu.astype(np.float64)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if not hasattr(
            self, "rates"
        ):  # a replica or a resumed run: the settings come from the seed genome's size
            mu = np.asarray(self.mu, np.float32)
            sigma = np.asarray(self.sigma, np.float32)
            self.start(mu)
            self.mu, self.sigma = mu, sigma


@dataclass(frozen=True)
class PGPEParams:
    stdev_init: float = option(
        0.03, "initial standard deviation of every gene (sets the radius)", gt=0
    )
    stdev_learning_rate: float = option(0.1, "PGPE's σ rate", gt=0)
    stdev_max_change: float = option(0.2, "most relative change of σ per generation", gt=0)


class EvoTorchPGPE(AskTell):
    """EvoTorch's functional PGPE with ClipUp: the study's population (made even: symmetric pairs)."""

    name, Params = "evotorch-pgpe", PGPEParams
    algorithm = "PGPE"  # EvoTorch's name for it
    state = ("center", "velocity", "stdev")

    def start(self, x0: np.ndarray) -> None:
        _torch()
        n = x0.size
        radius = self.p.stdev_init * math.sqrt(n)
        self.speed = radius / RADIUS_PER_SPEED
        self.center = np.asarray(x0, np.float32).copy()
        self.velocity = np.zeros(n, np.float32)
        self.stdev = self._fresh(radius).stdev.numpy().copy()  # PGPE's σ for that radius

    def _fresh(self, radius=None, stdev=None):
        torch = _torch()
        from evotorch.algorithms.functional import pgpe

        return pgpe(
            center_init=torch.from_numpy(self.center),
            center_learning_rate=self.speed / 2,
            stdev_learning_rate=self.p.stdev_learning_rate,
            objective_sense="max",
            ranking_method="centered",
            optimizer="clipup",
            optimizer_config={"max_speed": self.speed},
            radius_init=radius,
            stdev_init=None if stdev is None else torch.from_numpy(stdev),
            stdev_max_change=self.p.stdev_max_change,
            symmetric=True,
        )

    def _state(self):
        torch = _torch()
        s = self._fresh(stdev=self.stdev)
        opt = s.optimizer_state._replace(velocity=torch.from_numpy(self.velocity))
        return s._replace(optimizer_state=opt)

    def ask(self) -> np.ndarray:
        torch = _torch()
        from evotorch.algorithms.functional import pgpe_ask

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.rng.integers(0, 2**63 - 1)))
            xs = pgpe_ask(self._state(), popsize=self.population + self.population % 2)
        return xs.numpy()

    def tell(self, genomes: np.ndarray, fitness: np.ndarray) -> np.ndarray:
        torch = _torch()
        from evotorch.algorithms.functional import pgpe_tell

        new = pgpe_tell(
            self._state(),
            torch.from_numpy(np.asarray(genomes, np.float32)),
            torch.as_tensor(fitness, dtype=torch.float32),
        )
        opt = new.optimizer_state
        self.center = opt.center.numpy().copy()
        self.velocity = opt.velocity.numpy().copy()
        self.stdev = new.stdev.numpy().copy()
        return self.center.astype(np.float64)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        n = np.asarray(self.center).size
        self.speed = self.p.stdev_init * math.sqrt(n) / RADIUS_PER_SPEED
