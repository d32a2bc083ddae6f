"""The Ray actor of population evaluation: the trial's task and a replica of its strategy, built once from
the resolved config, scoring one chunk of a generation per message (see :mod:`.pool`)."""

from __future__ import annotations

import os

import numpy as np

from evolora.evolution.checkpoint import pack, unpack
from evolora.evolution.replica import Replica, digest

__all__ = ["Scorer"]


class Scorer:
    """A Ray actor: the trial's task and a replica of its strategy, built once from the resolved config."""

    def __init__(self, conf: dict, threads: int) -> None:
        import torch

        from evolora.fitness import build_task
        from evolora.orchestrator.assembly import strategy_factory, task_spec
        from evolora.orchestrator.study.sections import StudyConfig

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
        scores = (
            self.task.evaluate(genomes, gen, batches)
            if batches is not None
            else self.task.evaluate(genomes, gen)
        )
        return pack(
            {
                "fitness": [float(f) for f, _ in scores],
                "terms": [dict(t) for _, t in scores],
                "digests": [digest(g) for g in genomes],
            }
        )
