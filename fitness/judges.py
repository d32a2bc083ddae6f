"""Judge terms: a second, frozen model scores each continuation. ``judge_similarity``: the cosine between a
continuation and its example's reference text under a sentence-embedding model (all-MiniLM-L6-v2, packaged,
by default: meaning, not keywords). ``judge_classifier``: the probability a local sequence-classification
model gives one of its labels. Both batched; the judge loads once per process; registering them imports no
torch (a study file is checked before torch loads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evolora.fitness.plugins import register_fitness
from evolora.fitness.registry import FitnessTerm

if TYPE_CHECKING:
    from evolora.fitness.causal_terms import CausalOutputs

__all__ = ["JudgeSimilarity", "JudgeClassifier"]

_JUDGES: dict = {}  # (kind, model directory, device) → (model, tokenizer), loaded once per process


def _judge(kind: str, model: str, device):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from evolora.fitness.models import resolve_base

    path = resolve_base(model)
    key = (kind, str(path), str(device))
    if key not in _JUDGES:
        cls = AutoModel if kind == "embedding" else AutoModelForSequenceClassification
        net = cls.from_pretrained(str(path)).to(device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        _JUDGES[key] = (net, AutoTokenizer.from_pretrained(str(path)))
    return _JUDGES[key]


def _batches(texts: list[str], size: int):
    for i in range(0, len(texts), size):
        yield texts[i : i + size]


class _Judge(FitnessTerm):
    task = "causal"

    def __init__(self, model: str, batch_size: int = 64, max_length: int = 128) -> None:
        if batch_size < 1 or max_length < 2:
            raise ValueError(f"batch_size ≥ 1 and max_length ≥ 2, got {batch_size}, {max_length}")
        self.model, self.batch_size, self.max_length = model, batch_size, max_length

    def _inputs(self, tok, texts: list[str], device):
        enc = tok(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(device) for k, v in enc.items()}


@register_fitness("judge_similarity")
class JudgeSimilarity(_Judge):
    """Mean cosine similarity, under a sentence-embedding model (mean-pooled, as sentence-transformers pools
    all-MiniLM-L6-v2), between each continuation and its example's ``reference``: ``answer`` or ``target``."""

    def __init__(
        self,
        model: str = "minilm",
        reference: str = "answer",
        batch_size: int = 64,
        max_length: int = 128,
    ) -> None:
        super().__init__(model, batch_size, max_length)
        if reference not in ("answer", "target"):
            raise ValueError(f"reference must be 'answer' or 'target', got {reference!r}")
        self.reference = reference
        self._refs: dict[
            str, object
        ] = {}  # reference text → its embedding (they recur every generation)

    def _embed(self, texts: list[str], device):
        import torch

        from evolora.fitness.encoder import mean_pool

        net, tok = _judge("embedding", self.model, device)
        out = []
        with torch.inference_mode():
            for part in _batches(texts, self.batch_size):
                enc = self._inputs(tok, part, device)
                out.append(mean_pool(net(**enc).last_hidden_state, enc["attention_mask"]).double())
        return torch.cat(out) if out else torch.zeros(0)

    def __call__(self, out: CausalOutputs) -> float:
        import torch

        refs = [getattr(ex, self.reference) for ex in out.generated_examples]
        if any(r is None for r in refs):
            raise ValueError(f"judge_similarity needs examples with a `{self.reference}`")
        device = out.evaluator.device
        new = [r for r in dict.fromkeys(refs) if r not in self._refs]
        for r, e in zip(new, self._embed(new, device)):
            self._refs[r] = e
        gens = self._embed(list(out.generations), device)
        ref = torch.stack([self._refs[r] for r in refs])
        return float((gens * ref).sum(-1).mean())


@register_fitness("judge_classifier")
class JudgeClassifier(_Judge):
    """Mean probability that a local sequence-classification model (``model``: its directory) gives ``label``
    (an index, or a name of its ``id2label``) to each continuation — with ``with_prompt``, to prompt and
    continuation together."""

    def __init__(
        self,
        model: str,
        label: int | str = 1,
        with_prompt: bool = False,
        batch_size: int = 64,
        max_length: int = 128,
    ) -> None:
        super().__init__(model, batch_size, max_length)
        self.label, self.with_prompt = label, with_prompt

    def _index(self, net) -> int:
        names = {v: int(k) for k, v in net.config.id2label.items()}
        index = names.get(self.label, self.label) if isinstance(self.label, str) else self.label
        if not isinstance(index, int) or not 0 <= index < net.config.num_labels:
            raise ValueError(
                f"label {self.label!r} is not one of the judge's {net.config.num_labels} labels "
                f"({', '.join(names)})"
            )
        return index

    def __call__(self, out: CausalOutputs) -> float:
        import torch

        device = out.evaluator.device
        net, tok = _judge("classifier", self.model, device)
        index = self._index(net)
        texts = list(out.generations)
        if self.with_prompt:
            texts = [ex.prompt + g for ex, g in zip(out.generated_examples, texts)]
        probs = []
        with torch.inference_mode():
            for part in _batches(texts, self.batch_size):
                logits = net(**self._inputs(tok, part, device)).logits.double()
                probs.append(torch.softmax(logits, -1)[:, index])
        return float(torch.cat(probs).mean()) if probs else 0.0
