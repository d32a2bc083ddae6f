"""The causal-LM task: texts and prompts, likelihood / generation / KL terms, on a frozen causal base."""

from __future__ import annotations

import functools

from evolora.fitness.causal import CausalEvaluator, EncodedTexts, TextExample
from evolora.fitness.causal_terms import CausalOutputs
from evolora.fitness.lora import FlatLoRA
from evolora.fitness.spec import TaskSpec
from evolora.fitness.tasks import Task

__all__ = ["CausalTask"]


class CausalTask(Task):
    kind = "causal"

    def __init__(
        self,
        spec: TaskSpec,
        evaluator: CausalEvaluator,
        flat: FlatLoRA,
        terms: tuple,
        train,
        dev,
        reference=None,
        test=None,
    ) -> None:
        super().__init__(spec, evaluator, flat, terms, train, dev, test)
        self.reference: EncodedTexts | None = None
        self.base_logp = None
        wanted = (
            [name for name, *_ in spec.fitness.terms]
            + [spec.validation]
            + [name for name, _ in spec.objectives]
            + [name for name, *_ in spec.budget]
        )
        if "kl_to_base" in wanted:
            self.reference = evaluator.encode(
                reference if reference is not None else list(train)[:64]
            )
            self.write(self._seed_genome)
            self.base_logp = evaluator.base_logprobs(self.reference)  # the frozen base, once

    def evaluate(self, genomes, gen: int, batches=None):
        """As :meth:`Task.evaluate`, every continuation drawn on generation ``gen``'s stream: the same draws
        for each genome of the generation, other draws each generation (the held-out splits use stream 0)."""
        self.evaluator.stream = gen + 1
        try:
            return super().evaluate(genomes, gen, batches)
        finally:
            self.evaluator.stream = 0

    SAMPLE_PROMPTS = 4  # held-out prompts whose generations are shown at every validation
    PROMPT_WORDS = 4  # prompt-less validation texts are prompted with their first words

    def sample_prompts(self) -> list[TextExample]:
        """A fixed set of held-out prompts: the first validation examples' prompts (or, for texts without
        one, their first words), with the rest of the text as the reference target."""
        out = []
        for ex in list(self.val_items)[: self.SAMPLE_PROMPTS]:
            if ex.prompt:
                out.append(ex)
            else:
                words = ex.target.split()
                out.append(
                    TextExample(
                        prompt=" ".join(words[: self.PROMPT_WORDS]),
                        target=" " + " ".join(words[self.PROMPT_WORDS :]),
                        answer=ex.answer,
                        extra=ex.extra,
                    )
                )
        return out

    def samples(self, genome) -> list[dict]:
        """Greedy generations of ``genome`` for :meth:`sample_prompts`, each with every fitness term scored on
        that one example: what a person reads next to the curves."""
        self.write(genome)
        rows = []
        for ex in self.sample_prompts():
            data = self._encode([ex])
            out = self._outputs(data)
            values = {name: float(term(out)) for name, _, term in self.terms}
            rows.append({"prompt": ex.prompt, "generation": out.generations[0], **values})
        return rows

    def _records(self, items) -> list[dict]:
        return [{"prompt": e.prompt, "target": e.target, "answer": e.answer} for e in items]

    def _encode(self, items) -> EncodedTexts:
        return self.evaluator.encode(list(items))

    def _eva_batches(self, items):
        for b in self._encode(items).batches:
            yield {"input_ids": b.input_ids, "attention_mask": b.attention_mask}, b.attention_mask

    def _outputs(self, data: EncodedTexts) -> CausalOutputs:
        return CausalOutputs(
            self.evaluator, data, self.spec.fitness.max_new_tokens, self.reference, self.base_logp
        )

    def _outputs_population(self, data: EncodedTexts, genomes) -> list[CausalOutputs]:
        stacked = self._stack(genomes)
        logits = self.evaluator.logits_population(data, self._deltas, stacked)

        @functools.cache
        def generations():  # every genome's greedy texts in one batched decoding, only if a term asks
            return self.evaluator.generate_population(
                data, self.spec.fitness.max_new_tokens, self._deltas, stacked
            )

        return [
            CausalOutputs(
                self.evaluator,
                data,
                self.spec.fitness.max_new_tokens,
                self.reference,
                self.base_logp,
                logits=lg,
                load_genome=lambda g=g: self.write(g),
                generate=lambda p=p: generations()[p],
            )
            for p, (g, lg) in enumerate(zip(genomes, logits))
        ]
