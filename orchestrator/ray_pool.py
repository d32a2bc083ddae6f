"""Population evaluation on Ray actors: one generation's genomes scored by many processes or machines.

Each actor (:class:`Scorer`) builds the trial's task once — the frozen base model, the data, the trunk cache
— and a :class:`evolution.replica.Replica` of the strategy. The driver (:class:`RayPool`, the loop's
evaluator) splits the population into contiguous chunks, one per actor, and sends each actor one message
per generation, in evolora's data-only wire format (:func:`evolution.checkpoint.pack`):

* ``advance`` (ES, the actor's replica holds the previous generation): the previous generation's fitness
  values and the generator's state before this generation's draw — a few hundred bytes, whatever the genome;
* ``sync`` (ES, a new, replaced or resumed actor): the strategy's state once, then ``advance`` again;
* ``genomes`` (the GA, whose survivors and offspring are not a function of a small state): the vectors.

An actor returns its chunk's fitness values and terms and a digest of each genome it scored; the driver
checks each digest against its own genome, so a replica that drifted is caught (and sent the vectors)
rather than trusted. An actor that dies is replaced and its chunk scored again by the new one; every
member's score is taken once. Validation, checkpoints and the adapter stay with the driver, so a run resumes
unchanged on any number of actors.
"""

from __future__ import annotations

import os
import socket
from typing import Sequence

import numpy as np

from evolution import ConfigError, Observer
from evolution.checkpoint import pack, unpack
from evolution.replica import Replica, digest, replayable

from .errors import ClusterLost

__all__ = ["RayPool", "Scorer", "check_ray", "start_ray"]


def start_ray(address: str | None) -> None:
    """Connect to the cluster at ``address`` (None: start a local one) unless connected already; a cluster that
    cannot be reached is a ConfigError naming ``ray.address``."""
    import ray

    if ray.is_initialized():
        return
    if address is not None and address != "auto":
        _listening(address)
    try:
        if address is None:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError("ray.address", f"no Ray cluster reachable there ({type(e).__name__}: {e})",
                          address) from None


def _listening(address: str, timeout: float = 5.0) -> None:
    """Something accepts connections at ``address`` (ray.init itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError("ray.address", f"nothing listens there ({e})", address) from None


def check_ray(cfg) -> None:
    """Before a sweep writes anything: the cluster of ``cfg.ray.address`` answers (a local Ray needs no check)."""
    if cfg.ray.actors and cfg.ray.address is not None:
        import ray

        start_ray(cfg.ray.address)
        ray.shutdown()


class Scorer:
    """A Ray actor: the trial's task and a replica of its strategy, built once from the resolved config."""

    def __init__(self, conf: dict, threads: int) -> None:
        import torch

        from fitness import build_task

        from .config import StudyConfig
        from .trialspec import strategy_factory, task_spec

        torch.set_num_threads(threads)
        cfg = StudyConfig.model_validate(conf)
        torch.manual_seed(cfg.seed)
        self.task = build_task(task_spec(cfg))
        self.replica = Replica(strategy_factory(cfg, self.task.layout))

    def pid(self) -> int:
        return os.getpid()

    def score(self, message: bytes) -> bytes:
        """One chunk of one generation: its members rebuilt (or received) and scored."""
        m = unpack(message)
        gen, lo, hi = int(m["gen"]), int(m["lo"]), int(m["hi"])
        if m["mode"] == "genomes":
            genomes = list(m["genomes"])
            self.replica.gen = None  # it no longer holds the generation the driver's strategy is at
        else:
            if m["mode"] == "sync":
                pop = self.replica.sync(m["state"], m["draw"], gen)
            else:
                pop = self.replica.advance(m["fitness"], m["draw"], gen)
            if len(pop) != int(m["count"]):
                raise ValueError(f"replica built {len(pop)} genomes, the driver has {m['count']}")
            genomes = [np.asarray(g, dtype=np.float32) for g in pop[lo:hi]]
        batches = m["batches"]
        scores = self.task.evaluate(genomes, gen, batches) if batches is not None else self.task.evaluate(genomes, gen)
        return pack({"fitness": [float(f) for f, _ in scores], "terms": [dict(t) for _, t in scores],
                     "digests": [digest(g) for g in genomes]})


class RayPool(Observer):
    """The loop's evaluator on Ray actors (and an observer, to read the loop's strategy and last population)."""

    def __init__(self, conf: dict, actors: int, threads: int, address: str | None = None, num_gpus: float = 0.0,
                 retries: int = 3, num_cpus: float | None = None, ready_timeout: float = 900.0) -> None:
        """``num_cpus`` each actor reserves (default: its ``threads``, so a cluster places actors by cores)."""
        import ray

        start_ray(address)
        self.ray, self.conf, self.threads, self.retries = ray, conf, threads, retries
        cpus = threads if num_cpus is None else num_cpus
        self._cls = ray.remote(num_cpus=cpus, num_gpus=num_gpus, max_restarts=0, max_task_retries=0)(Scorer)
        self.actors = [self._cls.remote(conf, threads) for _ in range(actors)]
        self.held: list[int | None] = [None] * actors  # the generation each actor's replica holds
        self.loop = None
        self.replaced = 0
        self._figures: dict[str, float] = {}
        try:  # built: a bad task or a cluster without room fails here, before generation 0
            ray.get([a.pid.remote() for a in self.actors], timeout=ready_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise ClusterLost(f"{actors} Ray actors of {cpus} CPUs and {num_gpus} GPUs each were not all placed "
                              f"within {ready_timeout:.0f} s: the cluster lacks the resources") from None
        except ray.exceptions.RayError as e:
            self.close()
            raise ClusterLost(f"the Ray actors could not build the task: {e}") from None

    def bind(self, loop) -> None:
        self.loop = loop

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def describe(self) -> dict:
        return dict(self._figures)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []

    # ---- one generation -----------------------------------------------------------------------------
    def __call__(self, genomes: Sequence, gen: int, batches: Sequence[int | None] | None = None) -> list:
        n = len(genomes)
        bounds = np.linspace(0, n, min(len(self.actors), n) + 1).round().astype(int)
        want = [digest(g) for g in genomes]
        replay = self._replay_plan(genomes, gen)
        results: dict[int, tuple] = {}
        pending: dict = {}
        self._sent, lost = 0, 0

        def send(i: int, chunk: tuple[int, int], vectors: bool) -> None:
            data = self._message(i, chunk, genomes, gen, batches, None if vectors else replay)
            self._sent += len(data)
            pending[self.actors[i].score.remote(data)] = (i, chunk, vectors)

        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            send(i, (int(lo), int(hi)), replay is None)
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1)
            i, chunk, vectors = pending.pop(ready[0])
            try:
                out = unpack(self.ray.get(ready[0]))
            except self.ray.exceptions.RayActorError as e:
                lost += 1
                if lost > self.retries:
                    raise ClusterLost(f"generation {gen}: {lost} Ray actors died (ray.retries is {self.retries}); "
                                      f"the last: {e}") from None
                self._replace(i)
                send(i, chunk, replay is None)  # the new actor scores the chunk again (a replica: synced first)
                continue
            if out["digests"] != want[chunk[0] : chunk[1]]:
                self.held[i] = None  # its replica drifted from the driver's strategy: the vectors instead
                send(i, chunk, True)
                continue
            self.held[i] = None if vectors else gen
            for k, (f, t) in enumerate(zip(out["fitness"], out["terms"])):
                results[chunk[0] + k] = (f, t)
        self._figures = {"ray_actors": float(len(self.actors)), "ray_bytes_sent": float(self._sent),
                         "ray_bytes_per_genome": self._sent / max(n, 1), "ray_replaced": float(self.replaced)}
        return [results[k] for k in range(n)]

    def _replay_plan(self, genomes: Sequence, gen: int) -> dict | None:
        """What a replica needs for this generation, or None when the genomes must travel: the strategy is
        replayable and this call scores its whole population (the loop's ES populations are all new)."""
        strategy = self.loop.strategy if self.loop is not None else None
        if strategy is None or not replayable(strategy):
            return None
        prev = self.loop.population
        fitness = ([ind.fitness.values[0] for ind in prev] if prev and self.loop.gen == gen - 1
                   and all(ind.fitness.valid for ind in prev) else None)
        return {"draw": strategy.draw_state, "count": len(genomes), "fitness": fitness, "strategy": strategy}

    def _message(self, i: int, chunk: tuple[int, int], genomes: Sequence, gen: int, batches,
                 replay: dict | None) -> bytes:
        """Actor ``i``'s message for ``chunk``: the genomes themselves without a replay plan; else ``advance``
        when its replica holds the previous generation, ``sync`` (the strategy's state) when it does not."""
        lo, hi = chunk
        head = {"gen": gen, "lo": lo, "hi": hi, "batches": None if batches is None else list(batches[lo:hi])}
        if replay is None:
            return pack({**head, "mode": "genomes",
                         "genomes": np.stack([np.asarray(g, np.float32) for g in genomes[lo:hi]])})
        head.update(draw=replay["draw"], count=replay["count"])
        if self.held[i] == gen - 1 and replay["fitness"] is not None:
            return pack({**head, "mode": "advance", "fitness": replay["fitness"]})
        return pack({**head, "mode": "sync", "state": replay["strategy"].replica_state()})

    def _replace(self, i: int) -> None:
        """A new actor in place of actor ``i`` (dead): it builds the task again and holds no generation."""
        try:
            self.ray.kill(self.actors[i])
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        self.actors[i] = self._cls.remote(self.conf, self.threads)
        self.held[i] = None
        self.replaced += 1
