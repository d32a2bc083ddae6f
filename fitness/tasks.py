"""Tasks: a frozen base + LoRA + data + weighted fitness terms, exposed as the two callables the
evolution loop needs (``evaluate(genomes, gen)`` and ``validate(genome)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from evolution.errors import ConfigError
from evolution.genome import GenomeLayout

from .encoder import EncodedPairs, EncoderEvaluator
from .lora import FlatLoRA, attach_lora
from .models import load_base, pick_device
from .pairs import Pairs, load_sts
from .registry import FITNESS_TERMS, FitnessTerm

__all__ = ["TaskSpec", "PairTask", "build_task", "make_terms"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs, as plain values (filled by the orchestrator from a resolved config)."""

    base: str = "minilm"
    kind: str = "encoder"
    device: str = "auto"
    rank: int = 4
    alpha: float = 8.0
    target_modules: tuple[str, ...] = ("query", "value")
    layers: tuple[int, ...] | None = None
    train_path: str = ""
    dev_path: str = ""
    train_subset: int | None = 256
    dev_subset: int | None = None
    rotate: bool = False
    data_seed: int = 0
    batch_size: int = 64
    max_length: int = 128
    cache: bool | str = "auto"
    terms: tuple[tuple[str, float], ...] = (("stsb_spearman", 1.0),)
    validation: str = "stsb_spearman"
    seed: int = 0  # for the LoRA A initialisation
    extra: dict = field(default_factory=dict)


def make_terms(terms: Sequence[tuple[str, float]], task: str) -> list[tuple[str, float, FitnessTerm]]:
    out = []
    for i, (name, weight) in enumerate(terms):
        try:
            cls = FITNESS_TERMS.get(name)
        except KeyError as e:
            raise ConfigError(f"fitness.terms.{i}.name", str(e), name) from None
        if cls.task != task:
            raise ConfigError(f"fitness.terms.{i}.name", f"scores '{cls.task}' tasks, this study is a '{task}' task", name)
        out.append((name, float(weight), cls()))
    return out


def _subset(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


class PairTask:
    """Sentence-pair similarity on an encoder (STS-B): fitness on train pairs, validation on dev pairs."""

    kind = "pairs"

    def __init__(self, spec: TaskSpec, evaluator: EncoderEvaluator, flat: FlatLoRA, train: Pairs, dev: Pairs) -> None:
        self.spec, self.evaluator, self.flat = spec, evaluator, flat
        self._seed_genome = flat.read()  # the peft initialisation (B = 0): exactly the base model
        self.terms = make_terms(spec.terms, self.kind)
        self.val_term = make_terms([(spec.validation, 1.0)], self.kind)[0][2]
        self.train = train
        rng = np.random.Generator(np.random.PCG64(spec.data_seed))
        self._fixed: EncodedPairs | None = None
        if not spec.rotate:
            self._fixed = evaluator.encode(train.take(_subset(len(train), spec.train_subset, rng)))
        self.dev = evaluator.encode(dev.take(_subset(len(dev), spec.dev_subset, rng)))
        self._batch_gen, self._batch = -1, None

    @property
    def layout(self) -> GenomeLayout:
        return self.flat.layout

    def seed_genome(self) -> np.ndarray:
        return self._seed_genome.copy()

    def train_batch(self, gen: int) -> EncodedPairs:
        """The fitness batch of generation ``gen``: fixed, or (``rotate``) redrawn per generation from a
        generator seeded by (data seed, gen), so every genome of a generation sees the same pairs."""
        if self._fixed is not None:
            return self._fixed
        if gen != self._batch_gen:
            rng = np.random.Generator(np.random.PCG64([self.spec.data_seed, gen]))
            self._batch = self.evaluator.encode(self.train.take(_subset(len(self.train), self.spec.train_subset, rng)))
            self._batch_gen = gen
        return self._batch

    def score(self, genome: np.ndarray, data: EncodedPairs) -> tuple[float, dict[str, float]]:
        self.flat.write(genome)
        out = self.evaluator.pair_outputs(data)
        values = {name: term(out) for name, _, term in self.terms}
        return sum(w * values[name] for name, w, _ in self.terms), values

    def evaluate(self, genomes: Sequence[np.ndarray], gen: int) -> list[tuple[float, dict[str, float]]]:
        data = self.train_batch(gen)
        return [self.score(np.asarray(g), data) for g in genomes]

    def validate(self, genome: np.ndarray) -> float:
        self.flat.write(genome)
        return float(self.val_term(self.evaluator.pair_outputs(self.dev)))

    def save_adapter(self, genome: np.ndarray, out) -> None:
        self.flat.save_adapter(genome, out)


def build_task(spec: TaskSpec) -> PairTask:
    """Load the base model, attach LoRA, load and tokenise data. Raises ConfigError on bad input."""
    train = load_sts(spec.train_path, "data.train_path")
    dev = load_sts(spec.dev_path, "data.dev_path")
    make_terms(spec.terms, PairTask.kind)  # fail on bad names before loading a model
    make_terms([(spec.validation, 1.0)], PairTask.kind)
    device = pick_device(spec.device)
    model, tok = load_base(spec.kind, spec.base, device)
    peft_model = attach_lora(model, spec.rank, spec.alpha, spec.target_modules, spec.layers, spec.seed)
    flat = FlatLoRA(peft_model)
    evaluator = EncoderEvaluator(peft_model, tok, flat.adapted_layers, device, spec.batch_size, spec.max_length, spec.cache)
    return PairTask(spec, evaluator, flat, train, dev)
