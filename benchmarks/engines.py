"""The reference paths `evolora bench` measures evolora's engine against: the base model's forward (the
bound), a naive stock-peft loop, and the ES population shapes (a batch per pair, one layer block)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PerPair", "LayerBlocks", "Bound", "Naive"]


class PerPair:
    """A population scored as ES pairs, each pair on its own train batch, a new generation every call."""

    def __init__(self, task, genomes) -> None:
        self.task, self.genomes, self.gen = task, genomes, 0
        if task.evaluator.memoised:
            task.evaluator.fill_memo()  # steady state: the one trunk pass over the train split is not timed
        self.batches = [i // 2 for i in range(len(genomes))]

    def __call__(self) -> None:
        self.gen += 1
        self.task.evaluate(self.genomes, self.gen, self.batches)


class LayerBlocks:
    """A population scored as block-coordinate ES generations: round k's genomes equal a new mean except in
    the genes of layer k mod n (drawn up front, so drawing costs no timed time)."""

    def __init__(self, task, rounds: int, population: int, rng: np.random.Generator) -> None:
        self.task, self.k = task, 0
        layers = list(task.flat.layout.layer_genes().items())
        self.rounds = []
        for k in range(rounds):
            mean = (task.seed_genome() + rng.normal(0, 0.02, task.layout.size)).astype(np.float32)
            _, genes = layers[k % len(layers)]
            pop = []
            for _ in range(population):
                g = mean.copy()
                g[genes] += rng.normal(0, 0.02, genes.size).astype(np.float32)
                pop.append(g)
            self.rounds.append(pop)

    def __call__(self) -> None:
        self.task.evaluate(self.rounds[self.k % len(self.rounds)], 0)
        self.k += 1


class Bound:
    """The base model alone on the same batches: one forward per genome."""

    def __init__(self, task) -> None:
        self.task = task
        self.data = task.train_batch(0)

    @torch.inference_mode()
    def __call__(self, genomes) -> None:
        ev = self.task.evaluator
        with self.task.flat.base_only():
            for _ in genomes:
                for b in self.data.batches:
                    if hasattr(b, "inputs"):
                        ev.model(**b.inputs)
                    else:
                        ev.model(
                            input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False
                        )


class Naive:
    """Stock peft per genome: build the state dict, set_peft_model_state_dict, forward, score."""

    def __init__(self, task) -> None:
        from peft import set_peft_model_state_dict

        assert not task.flat.merged, (
            "the naive path is stock peft: LoRA computed by peft's own layers"
        )
        self.task, self.set = task, set_peft_model_state_dict
        self.data = task.train_batch(0)
        self.model = task.flat.model

    def __call__(self, genomes) -> None:
        for g in genomes:
            self.set(self.model, self.task.flat.state_dict(g))
            self.task._combine(self.task._outputs(self.data))
