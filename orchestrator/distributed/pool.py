"""Population evaluation on Ray actors: one generation's genomes scored by many processes or machines.

Each actor (:class:`Scorer`) builds the trial's task once — the frozen base model, the data, the trunk cache
— and a :class:`evolora.evolution.replica.Replica` of the strategy. The driver (:class:`RayPool`, the loop's
evaluator) splits the population into contiguous chunks, one per actor, and sends each actor one message
per generation, in evolora's data-only wire format (:func:`evolora.evolution.checkpoint.pack`):

* ``advance`` (ES, the actor's replica holds the previous generation): the previous generation's fitness
  values and the generator's state before this generation's draw — a few hundred bytes, whatever the genome;
* ``sync`` (ES, a new, replaced or resumed actor): the strategy's state once, then ``advance`` again;
* ``genomes`` (the GA, whose survivors and offspring are not a function of a small state): the vectors.

An actor returns its chunk's fitness values and terms and a digest of each genome it scored; the driver
checks each digest against its own genome, so a replica that drifted is caught (and sent the vectors)
rather than trusted. An actor that dies is replaced and its chunk scored again by the new one; every
member's score is taken once. The actors are reached through the trial's driver process
(:mod:`evolora.orchestrator.distributed.driver`), so a cluster that goes away fails the trial, never the
process running it.
Validation, checkpoints and the adapter stay with the driver, so a run resumes unchanged on any number of
actors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evolora.evolution import ConfigError, Observer
from evolora.evolution.checkpoint import pack, unpack
from evolora.evolution.replica import digest, replayable
from evolora.orchestrator.distributed.driver import RayDriver
from evolora.orchestrator.errors import ClusterLost

__all__ = ["RayPool", "check_terms_reach_actors"]


def check_terms_reach_actors(cfg) -> None:
    """Actors build the task in processes of their own, where only built-in terms and installed packages'
    entry points exist: a fitness term registered by this process's script is refused, naming it."""
    from evolora.fitness import FITNESS_TERMS

    for i, term in enumerate(cfg.fitness.terms):
        origin = FITNESS_TERMS.origin(term.name)
        if origin.startswith("python "):
            raise ConfigError(
                "ray.actors",
                f"fitness.terms.{i} {term.name!r} was registered in this process "
                f"({origin}); Ray actors load terms from installed packages: publish it as an entry "
                "point in the group evolora.fitness (docs/fitness.md), or set ray.actors: 0",
                cfg.ray.actors,
            )


class RayPool(Observer):
    """The loop's evaluator on Ray actors (and an observer, to read the loop's strategy and last population)."""

    def __init__(
        self,
        conf: dict,
        actors: int,
        threads: int,
        address: str | None = None,
        num_gpus: float = 0.0,
        retries: int = 3,
        num_cpus: float | None = None,
        ready_timeout: float = 900.0,
    ) -> None:
        """``num_cpus`` each actor reserves (default: its ``threads``, so a cluster places actors by cores)."""
        cpus = threads if num_cpus is None else num_cpus
        self.driver = RayDriver(conf, actors, threads, address, num_gpus, cpus, ready_timeout)
        self.retries, self.n_actors = retries, actors
        self.held: list[int | None] = [None] * actors  # the generation each actor's replica holds
        self.loop = None
        self.replaced = 0
        self._figures: dict[str, float] = {}

    def bind(self, loop) -> None:
        self.loop = loop

    def pids(self) -> list[int]:
        return self.driver.actor_pids()

    def describe(self) -> dict:
        return dict(self._figures)

    def close(self) -> None:
        self.driver.close()

    # ---- one generation -----------------------------------------------------------------------------
    def __call__(
        self, genomes: Sequence, gen: int, batches: Sequence[int | None] | None = None
    ) -> list:
        n = len(genomes)
        bounds = np.linspace(0, n, min(self.n_actors, n) + 1).round().astype(int)
        want = [digest(g) for g in genomes]
        replay = self._replay_plan(genomes, gen)
        results: dict[int, tuple] = {}
        pending: dict[int, tuple] = {}  # token → (actor, chunk, vectors sent)
        self._sent, lost = 0, 0

        def send(i: int, chunk: tuple[int, int], vectors: bool) -> None:
            data = self._message(i, chunk, genomes, gen, batches, None if vectors else replay)
            self._sent += len(data)
            pending[self.driver.score(i, data)] = (i, chunk, vectors)

        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            send(i, (int(lo), int(hi)), replay is None)
        while pending:
            token, ok, answer = self.driver.wait()
            i, chunk, vectors = pending.pop(token)
            if not ok:  # its actor died: a new one scores the chunk again (a replica: synced first)
                lost += 1
                if lost > self.retries:
                    raise ClusterLost(
                        f"generation {gen}: {lost} Ray actors died (ray.retries is {self.retries}); "
                        f"the last: {answer}"
                    )
                self.driver.replace(i)
                self.held[i] = None
                self.replaced += 1
                send(i, chunk, replay is None)
                continue
            out = unpack(answer)
            if out["digests"] != want[chunk[0] : chunk[1]]:
                # its replica drifted from the driver's strategy: the vectors instead
                self.held[i] = None
                send(i, chunk, True)
                continue
            self.held[i] = None if vectors else gen
            for k, (f, t) in enumerate(zip(out["fitness"], out["terms"])):
                results[chunk[0] + k] = (f, t)
        self._figures = {
            "ray_actors": float(self.n_actors),
            "ray_bytes_sent": float(self._sent),
            "ray_bytes_per_genome": self._sent / max(n, 1),
            "ray_replaced": float(self.replaced),
        }
        return [results[k] for k in range(n)]

    def _replay_plan(self, genomes: Sequence, gen: int) -> dict | None:
        """What a replica needs for this generation, or None when the genomes must travel: the strategy is
        replayable and this call scores its whole population (the loop's ES populations are all new)."""
        strategy = self.loop.strategy if self.loop is not None else None
        if strategy is None or not replayable(strategy):
            return None
        prev = self.loop.population
        fitness = (
            [ind.fitness.values[0] for ind in prev]
            if prev and self.loop.gen == gen - 1 and all(ind.fitness.valid for ind in prev)
            else None
        )
        return {
            "draw": strategy.draw_state,
            "count": len(genomes),
            "fitness": fitness,
            "strategy": strategy,
        }

    def _message(
        self,
        i: int,
        chunk: tuple[int, int],
        genomes: Sequence,
        gen: int,
        batches,
        replay: dict | None,
    ) -> bytes:
        """Actor ``i``'s message for ``chunk``: the genomes themselves without a replay plan; else ``advance``
        when its replica holds the previous generation, ``sync`` (the strategy's state) when it does not."""
        lo, hi = chunk
        head = {
            "gen": gen,
            "lo": lo,
            "hi": hi,
            "batches": None if batches is None else list(batches[lo:hi]),
        }
        if replay is None:
            return pack(
                {
                    **head,
                    "mode": "genomes",
                    "genomes": np.stack([np.asarray(g, np.float32) for g in genomes[lo:hi]]),
                }
            )
        head.update(draw=replay["draw"], count=replay["count"])
        if self.held[i] == gen - 1 and replay["fitness"] is not None:
            return pack({**head, "mode": "advance", "fitness": replay["fitness"]})
        return pack({**head, "mode": "sync", "state": replay["strategy"].replica_state()})
