"""How continuations are drawn: greedy, or sampled (temperature, top-p) with common random numbers — the
draws of a prompt's j-th completion depend on the trial's seed, the stream (a generation of the evolution, or
the held-out splits) and the prompt, never on the genome, so every genome of a generation is scored on the
same draws and a difference in reward is the adapters' own, not the dice's.

A draw is Gumbel-max on the warped logits: ``argmax(log softmax(top_p(logits / T)) + G)`` with ``G`` Gumbel
noise from a generator per (seed, stream, prompt, completion) samples exactly from the temperature- and
nucleus-warped distribution, and the same noise can be added to each genome's logits."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from evolora.fitness.settings import FitnessSettings

__all__ = ["draws"]


def _generator(seed: int, stream: int, key: str, prompt: int, j: int) -> torch.Generator:
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    state = np.random.SeedSequence([seed, stream, digest, prompt, j]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


class _Draws(LogitsProcessor):
    """A logits processor for ``model.generate`` (greedy decoding of the perturbed, warped logits): the
    rows of a batch are (prompt, completion) pairs, repeated once per genome decoded together."""

    def __init__(
        self, settings: FitnessSettings, seed: int, stream: int, key: str, rows, genomes: int
    ) -> None:
        warpers = [TemperatureLogitsWarper(settings.temperature)]
        if settings.top_p < 1:
            warpers.append(TopPLogitsWarper(settings.top_p))
        self.warp = LogitsProcessorList(warpers)
        self.gens = [_generator(seed, stream, key, i, j) for i, j in rows]
        self.genomes = genomes

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.warp(input_ids, scores.double()), dim=-1)
        u = torch.stack(
            [torch.rand(scores.shape[-1], generator=g, dtype=torch.float64) for g in self.gens]
        )
        gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1.0)))
        return (logp + gumbel.repeat(self.genomes, 1).to(logp.device)).to(scores.dtype)


def draws(
    settings: FitnessSettings, seed: int, stream: int, key: str, rows, genomes: int = 1
) -> list:
    """The ``logits_processor`` list for one batch of (prompt, completion) ``rows`` of the data ``key``, drawn
    as ``settings`` (``fitness.temperature``, ``top_p``) say from the trial's ``seed``: empty when greedy
    (temperature 0)."""
    if settings.temperature == 0:
        return []
    return [_Draws(settings, seed, stream, key, rows, genomes)]
