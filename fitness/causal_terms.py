"""Fitness terms for causal language models. Each reads a :class:`CausalOutputs`, whose parts (logits,
log-likelihoods, greedy generations, KL to the base) are computed lazily, once per genome."""

from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from evolora.fitness.plugins import register_fitness
from evolora.fitness.registry import FitnessTerm

# registering the terms must not import torch (study files are validated before it loads)
if TYPE_CHECKING:
    from evolora.fitness.causal import CausalEvaluator, EncodedTexts

__all__ = ["CausalOutputs"]


class CausalOutputs:
    def __init__(
        self,
        evaluator: CausalEvaluator,
        data: EncodedTexts,
        max_new_tokens: int,
        reference: EncodedTexts | None = None,
        base_logp: list | None = None,
        logits: list | None = None,
        load_genome=None,
        generate=None,
    ) -> None:
        """``logits``: precomputed (batched path); ``generate``: this genome's generations from the batched
        path (called only if a term reads them); ``load_genome``: puts this genome into the model before
        anything that must run it alone (KL on other texts)."""
        self.evaluator, self.data, self.max_new_tokens = evaluator, data, max_new_tokens
        self.reference, self.base_logp = reference, base_logp
        self._load = load_genome or (lambda: None)
        self._generate = generate
        if logits is not None:
            self.__dict__["logits"] = logits

    @property
    def examples(self):
        return self.data.examples

    @property
    def generated_examples(self):
        """The example of each generation: every example once per completion drawn for its prompt
        (``fitness.completions``, consecutive: a prompt's group, as GRPO's reward functions see it)."""
        k = self.evaluator.generation.completions
        return [ex for ex in self.examples for _ in range(k)]

    @cached_property
    def logits(self):
        return self.evaluator.logits(self.data)

    @cached_property
    def logprobs(self) -> np.ndarray:
        return self.evaluator.mean_logprobs(self.data, self.logits)

    @cached_property
    def generations(self) -> list[str]:
        if self._generate is not None:
            return self._generate()
        self._load()
        return self.evaluator.generate(self.data, self.max_new_tokens)

    @cached_property
    def completion_ids(self) -> list[list[int]]:
        """Each greedy generation re-tokenised (what a TRL reward function reads as ``completion_ids``)."""
        return [list(self.evaluator.token_ids(g)) for g in self.generations]

    @cached_property
    def kl(self) -> float:
        if self.reference is None or self.base_logp is None:
            raise RuntimeError("kl_to_base needs reference texts (the task sets them up)")
        if self.reference is self.data:
            return self.evaluator.kl(self.reference, self.base_logp, self.logits)
        self._load()
        return self.evaluator.kl(self.reference, self.base_logp)


class _CausalTerm(FitnessTerm):
    task = "causal"


@register_fitness("likelihood")
class Likelihood(_CausalTerm):
    """Mean token log-probability of the target texts (teacher-forced), averaged over examples."""

    def __call__(self, out: CausalOutputs) -> float:
        lp = out.logprobs
        return float(np.nanmean(lp)) if np.isfinite(lp).any() else float("nan")


@register_fitness("keyword")
class Keyword(_CausalTerm):
    """Fraction of greedy generations that contain one of ``keywords`` (or match ``regex``)."""

    def __init__(
        self,
        keywords: list[str] | None = None,
        regex: str | None = None,
        case_sensitive: bool = False,
    ) -> None:
        if not keywords and not regex:
            raise ValueError("keyword needs `keywords` or `regex`")
        flags = 0 if case_sensitive else re.IGNORECASE
        if regex:
            try:
                re.compile(regex)
            except re.error as e:
                raise ValueError(
                    f"regex {regex!r} is not a valid regular expression ({e})"
                ) from None
        parts = [re.escape(k) for k in keywords or []] + ([regex] if regex else [])
        self.pattern = re.compile("|".join(f"(?:{p})" for p in parts), flags)

    def __call__(self, out: CausalOutputs) -> float:
        gens = out.generations
        return sum(bool(self.pattern.search(g)) for g in gens) / max(len(gens), 1)


@register_fitness("exact_match")
class ExactMatch(_CausalTerm):
    """Fraction of generations whose first line, stripped, equals their example's ``answer``."""

    def __call__(self, out: CausalOutputs) -> float:
        pairs = [
            (g, e.answer)
            for g, e in zip(out.generations, out.generated_examples)
            if e.answer is not None
        ]
        if not pairs:
            raise ValueError("exact_match needs examples with an `answer`")
        first = lambda s: (s.strip().splitlines() or [""])[0].strip()  # noqa: E731
        return sum(first(g) == a.strip() for g, a in pairs) / len(pairs)


@register_fitness("distinct_n")
class DistinctN(_CausalTerm):
    """Distinct word n-grams / all word n-grams over the generations (diversity; 0 when nothing generated)."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError(f"n must be ≥ 1, got {n}")
        self.n = n

    def __call__(self, out: CausalOutputs) -> float:
        grams = []
        for g in out.generations:
            w = g.split()
            grams += [tuple(w[i : i + self.n]) for i in range(len(w) - self.n + 1)]
        return len(set(grams)) / len(grams) if grams else 0.0


@register_fitness("kl_to_base")
class KLToBase(_CausalTerm):
    """Minus the mean KL(adapted ‖ base) of next-token distributions on reference texts: the guard against
    drifting into word salad. 0 for the base model, negative otherwise."""

    def __call__(self, out: CausalOutputs) -> float:
        return -out.kl
