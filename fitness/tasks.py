"""Tasks: a frozen base + LoRA + data + weighted fitness terms, exposed as the two callables the
evolution loop needs (``evaluate(genomes, gen)`` and ``validate(genome)``)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
import torch

from evolora.evolution.genome import GenomeLayout
from evolora.evolution.loop import Validation
from evolora.fitness.aliases import BUILT, HUB_IDS
from evolora.fitness.batched import PopulationDeltas
from evolora.fitness.encoder import EncodedPairs
from evolora.fitness.genomes import SubspaceGenome, consumer_directions, eva_seed, make_genome_map
from evolora.fitness.lora import FlatLoRA
from evolora.fitness.pairs import Pairs
from evolora.fitness.spec import TaskSpec
from evolora.fitness.splits import take

__all__ = ["Task", "PairTask"]


_EVA_STREAM = 0xE7A  # the lora.init: eva examples' own random stream under the data seed


def _subset(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


class Task:
    """The loop's two callables over a frozen base + flat LoRA buffer + data + weighted terms. Subclasses
    say how a data subset is encoded and how one genome's outputs are produced from it."""

    kind = ""

    def __init__(
        self, spec: TaskSpec, evaluator, flat: FlatLoRA, terms: tuple, train, dev, test=None
    ) -> None:
        """``terms``: :func:`evolora.fitness.spec.build_terms` of ``spec`` (the builder makes them once, before
        the model)."""
        self.spec, self.evaluator, self.flat = spec, evaluator, flat
        # genome → the LoRA weights the model computes with
        self.genome = make_genome_map(spec.lora.genome, flat)
        # encoded on first use: after the run, never before
        self._test_items, self._test = (
            test,
            None,
        )
        self._seed_genome = self.genome.seed()  # exactly the base model (B = 0)
        self.terms, self.val_term, self.objective_terms, self.guard_terms = terms
        self._base_guards: dict[str, float] | None = None
        self._base_validation: float | Validation | None = None  # the seed genome's, once computed
        self.train = train
        # the options' rules: fitness.spec.check_genome (a TaskSpec is checked when made)
        if spec.lora.init == "eva":
            batches = self._eva_batches(self._eva_items())
            if spec.lora.a_subspace:
                self._seed_genome, a_dirs = eva_seed(
                    flat, self._seed_genome, batches, spec.lora.a_subspace
                )
            else:
                self._seed_genome = eva_seed(flat, self._seed_genome, batches)
        if spec.lora.a_subspace or spec.lora.b_subspace:
            b_dirs = (
                consumer_directions(flat, spec.lora.b_subspace) if spec.lora.b_subspace else None
            )
            self.genome = SubspaceGenome(
                flat, self._seed_genome, a_dirs if spec.lora.a_subspace else None, b_dirs
            )
            self._seed_genome = self.genome.seed()
        rng = np.random.Generator(np.random.PCG64(spec.data.seed))
        self._fixed = None
        if not spec.data.rotate:
            self._fixed = self._encode(
                take(train, _subset(len(train), spec.data.train_subset, rng))
            )
        self.val_items = take(dev, _subset(len(dev), spec.data.dev_subset, rng))
        self.dev = self._encode(self.val_items)
        self._batch_gen, self._batch = -1, None
        self._pair_key, self._pair_batch = None, None
        k = spec.model.genomes_per_forward
        self.genomes_per_forward = k if k is not None else (8 if flat.buffer.is_cuda else 1)
        self._deltas = PopulationDeltas(flat) if self.genomes_per_forward > 1 else None
        # adapted layer → its genes (full LoRA layout)
        self._layer_genes: dict[int, np.ndarray] | None = None

    def _encode(self, items):
        raise NotImplementedError

    def _eva_items(self):
        """The train examples (never validation or test) whose inputs set ``lora.init: eva``'s directions:
        ``spec.lora.init_examples`` of them, drawn by a generator seeded from (data seed, a fixed stream id)."""
        rng = np.random.Generator(np.random.PCG64([self.spec.data.seed, _EVA_STREAM]))
        return take(self.train, _subset(len(self.train), self.spec.lora.init_examples, rng))

    def _eva_batches(self, items):
        """(model keyword arguments, token mask) batches of ``items`` for :func:`evolora.fitness.genomes.eva_seed`."""
        raise NotImplementedError

    def _outputs(self, data):
        """Outputs of the genome currently in the model."""
        raise NotImplementedError

    def _outputs_population(self, data, genomes: Sequence[np.ndarray]) -> list:
        """Outputs of several genomes computed together (batched path)."""
        raise NotImplementedError

    @property
    def layout(self) -> GenomeLayout:
        """The genome's layout (for ``lora.genome: xs`` the cores, not the LoRA matrices)."""
        return self.genome.layout

    def write(self, genome: np.ndarray) -> None:
        """Put ``genome``'s adapter into the model."""
        self.flat.write(self.genome.expand(np.asarray(genome)))

    def seed_genome(self) -> np.ndarray:
        return self._seed_genome.copy()

    def train_batch(self, gen: int, batch: int | None = None):
        """The fitness batch of generation ``gen``: fixed, or (``rotate``) redrawn per generation from a
        generator seeded by (data seed, gen), so every genome of a generation sees the same examples.
        ``batch`` k (an ES scoring each antithetic pair on its own batch): drawn from (data seed, gen, k + 1)."""
        if batch is not None:
            if self._fixed is not None:
                raise ValueError("per-pair fitness batches need data.rotate: true")
            if (
                gen,
                batch,
            ) != self._pair_key:  # both signs of a pair are scored one after the other
                # batch + 1: SeedSequence reads its words as one integer, so [seed, gen, 0] would be [seed, gen]
                rng = np.random.Generator(np.random.PCG64([self.spec.data.seed, gen, batch + 1]))
                self._pair_batch = self._encode(
                    take(self.train, _subset(len(self.train), self.spec.data.train_subset, rng))
                )
                self._pair_key = (gen, batch)
            return self._pair_batch
        if self._fixed is not None:
            return self._fixed
        if gen != self._batch_gen:
            rng = np.random.Generator(np.random.PCG64([self.spec.data.seed, gen]))
            self._batch = self._encode(
                take(self.train, _subset(len(self.train), self.spec.data.train_subset, rng))
            )
            self._batch_gen = gen
        return self._batch

    def _combine(self, out) -> tuple[float, dict[str, float]]:
        values = {name: term(out) for name, _, term in self.terms}
        return sum(w * values[name] for name, w, _ in self.terms), values

    def score(self, genome: np.ndarray, data) -> tuple[float, dict[str, float]]:
        self.write(genome)
        return self._combine(self._outputs(data))

    def evaluate(
        self, genomes: Sequence[np.ndarray], gen: int, batches: Sequence[int | None] | None = None
    ) -> list[tuple[float, dict[str, float]]]:
        """Fitness of each genome on generation ``gen``'s batch, or with ``batches`` each on its own
        (:meth:`train_batch`); consecutive genomes of one batch are scored together."""
        if batches is None:
            batches = [None] * len(genomes)
        res: list[tuple[float, dict[str, float]]] = []
        i = 0
        while i < len(genomes):
            j = i + 1
            while j < len(genomes) and batches[j] == batches[i]:
                j += 1
            res += self._evaluate_on(
                self.train_batch(gen, batches[i]), [np.asarray(g) for g in genomes[i:j]]
            )
            i = j
        return res

    def _evaluate_on(self, data, genomes: list[np.ndarray]) -> list[tuple[float, dict[str, float]]]:
        layer, prefix = self._shared_prefix(genomes)
        with self.evaluator.trunk.shared_below(layer, prefix):
            k = self.genomes_per_forward
            if k <= 1:
                return [self.score(g, data) for g in genomes]
            if prefix:
                # the batched path's trunk runs the model as it is: with the shared prefix
                self.write(genomes[0])
            res = []
            for i in range(0, len(genomes), k):
                res += [
                    self._combine(out) for out in self._outputs_population(data, genomes[i : i + k])
                ]
            return res

    def _shared_prefix(self, genomes: list[np.ndarray]) -> tuple[int, str]:
        """(the lowest adapted layer where these genomes' adapters differ, a hash of the adapter they share
        below it): what the trunk cache's shared prefix needs (``fitness.trunk``). (first, "") when there is
        nothing to share: the cache is off, a single genome, or they differ already in the first layer."""
        trunk = self.evaluator.trunk
        if not trunk.enabled or len(genomes) < 2:
            return trunk.first, ""
        if self._layer_genes is None:
            self._layer_genes = self.flat.layout.layer_genes()
        full = [self.genome.expand(np.asarray(g)) for g in genomes]
        layers = list(self._layer_genes)
        start = layers[-1]  # all equal: the top layer still runs per genome
        for layer in layers:
            idx = self._layer_genes[layer]
            ref = full[0][idx]
            if any(not np.array_equal(f[idx], ref) for f in full[1:]):
                start = layer
                break
        if start <= trunk.first:
            return trunk.first, ""
        below = np.concatenate([self._layer_genes[layer] for layer in layers if layer < start])
        return start, hashlib.sha256(
            np.ascontiguousarray(full[0][below], dtype=np.float32).tobytes()
        ).hexdigest()

    def _stack(self, genomes: Sequence[np.ndarray]) -> torch.Tensor:
        full = [self.genome.expand(np.asarray(g)) for g in genomes]
        # (P, LoRA genes)
        return torch.from_numpy(np.stack(full).astype(np.float32)).to(self.flat.buffer.device)

    def validate(self, genome: np.ndarray) -> float | Validation:
        """The validation metric of ``genome`` on the validation split; in a budgeted study (``spec.budget``)
        with its guards from the same outputs, and whether they stay within budget. The base model's (the
        seed genome's) is computed once."""
        genome = np.asarray(genome)
        seed = np.array_equal(genome, self._seed_genome)  # False for another shape too
        if seed and self._base_validation is not None:
            return self._base_validation
        value = self._validate(genome)
        if seed:
            self._base_validation = value
        return value

    def _validate(self, genome: np.ndarray) -> float | Validation:
        base = self.base_guards() if self.guard_terms else None
        self.write(genome)
        out = self._outputs(self.dev)
        value = float(self.val_term(out))
        if base is None:
            return value
        return Validation(value, *self._judge(self._guards(out), base))

    def _guards(self, out) -> dict[str, float]:
        return {name: float(term(out)) for name, _, term in self.guard_terms}

    def base_guards(self) -> dict[str, float]:
        """The guards of the base model (the seed genome) on the validation split, computed once."""
        if self._base_guards is None:
            self.write(self._seed_genome)
            self._base_guards = self._guards(self._outputs(self.dev))
        return self._base_guards

    def _judge(
        self, guards: dict[str, float], base: dict[str, float]
    ) -> tuple[bool, dict[str, float], str]:
        """(within budget, the guards, why not): each guard against its bounds (``max_drop`` below the base's
        value, an absolute ``min``); a non-finite guard is out of budget."""
        why = []
        for name, _, max_drop, floor in self.spec.budget:
            v = guards[name]
            if not math.isfinite(v):
                why.append(f"{name} is {v}")
                continue
            if max_drop is not None and v < base[name] - max_drop:
                why.append(
                    f"{name} {v:.5f} < {base[name] - max_drop:.5f} (base {base[name]:.5f} - max_drop {max_drop:g})"
                )
            if floor is not None and v < floor:
                why.append(f"{name} {v:.5f} < min {floor:g}")
        return not why, guards, "; ".join(why)

    def test_guards(self, genome: np.ndarray) -> dict[str, float]:
        """The guards (budget and watched terms) of ``genome`` on the test split: reporting only."""
        data = self._encoded_test()
        self.write(genome)
        return self._guards(self._outputs(data))

    def objectives(self, genome: np.ndarray) -> dict[str, float]:
        """Each Pareto objective (``spec.objectives``) for ``genome``, on the validation split, from one set
        of outputs (a generation term generates once for all)."""
        self.write(genome)
        out = self._outputs(self.dev)
        return {name: float(term(out)) for name, _, term in self.objective_terms}

    @property
    def has_test(self) -> bool:
        return self._test_items is not None

    def test(self, genome: np.ndarray) -> float:
        """The validation metric on the test split (``data.test_path``). For reporting only: the runner
        calls it once the evolution has ended, and nothing it returns ever chooses anything."""
        return self.test_scores(genome)[0]

    def test_scores(self, genome: np.ndarray) -> tuple[float, dict[str, tuple[float, int]]]:
        """The validation metric on the test split, and on each of its sources (STS-B: MSRpar, headlines,
        images, …) as {source: (value, pairs)} — empty when the test data names no sources — from one pass
        over the split. For reporting only, like :meth:`test`: where a gain comes from, and what it costs."""
        return self._scores(genome, self._encoded_test(), self._test_items)

    @property
    def test_size(self) -> int:
        """Examples in the test split (0 without one)."""
        return 0 if self._test_items is None else len(self._test_items)

    def _encoded_test(self):
        if self._test_items is None:
            raise RuntimeError("this task has no test split (data.test_path)")
        if self._test is None:
            self._test = self._encode(self._test_items)
        return self._test

    def validation_scores(self, genome: np.ndarray) -> tuple[float, dict[str, tuple[float, int]]]:
        """The validation metric on the validation split and on each of its sources, as :meth:`test_scores`
        does for the test split: where the champion's validation gain comes from (with ``data.val_sources``,
        the held-out sources apart from the ones fitness saw). The whole-split value is :meth:`validate`'s."""
        return self._scores(genome, self.dev, self.val_items)

    def _scores(
        self, genome: np.ndarray, data, items
    ) -> tuple[float, dict[str, tuple[float, int]]]:
        """The validation metric of ``genome`` on encoded ``data`` as a whole and on each source of ``items``."""
        self.write(genome)
        out = self._outputs(data)
        return float(self.val_term(out)), self._by_source(items, out)

    def _by_source(self, items, outputs) -> dict[str, tuple[float, int]]:
        """The validation metric on each source of ``items`` (none for data without sources)."""
        return {}

    def split_records(self) -> dict[str, list[dict]]:
        """The examples of each split as plain records (for dataset logging): train, validation[, test]."""
        out = {"train": self._records(self.train), "validation": self._records(self.val_items)}
        if self._test_items is not None:
            out["test"] = self._records(self._test_items)
        return out

    def _records(self, items) -> list[dict]:
        raise NotImplementedError

    def validation_measure(self) -> str:
        """What a validation value was measured with — the metric, its params and the validation examples
        themselves — as a short digest: two values compare only when their measures are equal."""
        what = {
            "metric": self.spec.validation,
            "params": self.spec.validation_params,
            "examples": self._records(self.val_items),
        }
        text = json.dumps(what, sort_keys=True, ensure_ascii=False, default=str)
        return f"{self.spec.validation}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def save_adapter(self, genome: np.ndarray, out) -> None:
        """The genome as a stock PEFT adapter whose ``base_model_name_or_path`` names the base portably: its
        hub id (a packaged base), its alias (a base evolora builds), else the directory it was given as."""
        base = self.spec.model.base
        portable = HUB_IDS.get(base, base if base in BUILT else None)
        self.flat.save_adapter(self.genome.expand(np.asarray(genome)), out, portable)


class PairTask(Task):
    """Sentence-pair similarity on an encoder (STS-B): fitness on train pairs, validation on dev pairs."""

    kind = "pairs"

    def _encode(self, pairs: Pairs) -> EncodedPairs:
        return self.evaluator.encode(pairs)

    def _records(self, pairs: Pairs) -> list[dict]:
        return [
            {"sentence1": a, "sentence2": b, "score": float(g)}
            for a, b, g in zip(pairs.s1, pairs.s2, pairs.gold)
        ]

    def _outputs(self, data: EncodedPairs):
        return self.evaluator.pair_outputs(data)

    def _eva_batches(self, pairs: Pairs):
        for b in self._encode(pairs).batches:
            yield b.inputs, b.inputs["attention_mask"]

    def _by_source(self, items: Pairs, outputs) -> dict[str, tuple[float, int]]:
        src, by = np.asarray(items.source), {}
        for name in sorted(set(items.source)):
            m = src == name  # one mask per source
            by[name] = (float(self.val_term(outputs.take(m))), int(m.sum()))
        return by

    def _outputs_population(self, data: EncodedPairs, genomes):
        # (P, sentences, hidden)
        emb = self.evaluator.embed_population(data, self._deltas, self._stack(genomes))
        return [self.evaluator.pair_outputs(data, e) for e in emb]
