"""Sentence embeddings from an adapted encoder, as sentence-transformers computes them for MiniLM
(mean pooling over the attention mask, then L2 normalisation), with a frozen-trunk cache.

Frozen-trunk cache: when the LoRA sits only on a top slice of layers (first adapted layer ``L`` and every
layer above it), the hidden states entering layer ``L`` are the same for every genome. They are computed
once per evaluation batch (captured by a pre-hook on layer ``L``) and each genome runs only layers
``L..N-1``. Measured 4.2× the full-model speed for k=1 on MiniLM. The cache is keyed by the batch's content,
so a new batch can never be served a stale trunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .batched import repeat_batch
from .trunk import TrunkCache
from .pairs import PairOutputs, Pairs

__all__ = ["EncodedPairs", "EncoderEvaluator", "mean_pool"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq, hidden), (batch, seq) → (batch, hidden), L2-normalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    summed = (hidden * m).sum(dim=1)  # (batch, hidden)
    pooled = summed / m.sum(dim=1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=1)


@dataclass
class _Batch:
    rows: torch.Tensor  # (batch,) positions of these sentences in the unique-sentence list
    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask[, token_type_ids]: (batch, seq)


@dataclass
class EncodedPairs:
    """A pair set tokenised once: unique sentences in length-sorted batches, plus pair indices."""

    key: str  # content hash: identifies the batch for the trunk cache
    batches: list[_Batch]
    n_sentences: int
    i1: torch.Tensor  # (pairs,) index of each pair's first sentence
    i2: torch.Tensor
    gold: np.ndarray  # (pairs,)


class _StopForward(Exception):
    pass


class EncoderEvaluator:
    def __init__(self, model: torch.nn.Module, tokenizer, adapted_layers: list[int], device: torch.device,
                 batch_size: int = 64, max_length: int = 128, cache: bool | str = "auto", cache_entries: int = 4) -> None:
        self.model, self.tok, self.device = model, tokenizer, device
        self.batch_size, self.max_length = batch_size, max_length
        self.trunk = TrunkCache(model, adapted_layers, cache, cache_entries)
        self.layers, self.first = self.trunk.layers, self.trunk.first
        self.use_cache = self.trunk.enabled
        self._tokens: dict[str, dict] = {}  # sentence → tokenizer features

    @property
    def trunk_computations(self) -> int:
        return self.trunk.computations

    # ---- data ------------------------------------------------------------------------------------
    def encode(self, pairs: Pairs) -> EncodedPairs:
        sentences = list(dict.fromkeys(pairs.s1 + pairs.s2))  # unique, first-seen order
        pos = {s: i for i, s in enumerate(sentences)}
        new = [s for s in sentences if s not in self._tokens]  # each sentence is tokenised once per evaluator
        if new:
            enc = self.tok(new, truncation=True, max_length=self.max_length)
            for i, s in enumerate(new):
                self._tokens[s] = {k: enc[k][i] for k in enc.keys()}
        feats_all = [self._tokens[s] for s in sentences]
        lengths = np.array([len(f["input_ids"]) for f in feats_all])
        order = np.argsort(lengths, kind="stable")  # batch by length: little padding
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            feats = [feats_all[i] for i in rows]
            padded = self.tok.pad(feats, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in padded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            batches.append(_Batch(torch.as_tensor(rows, device=self.device), inputs))
        h = hashlib.sha256("\x1f".join(sentences).encode()).hexdigest()
        return EncodedPairs(
            key=h, batches=batches, n_sentences=len(sentences),
            i1=torch.tensor([pos[s] for s in pairs.s1], device=self.device),
            i2=torch.tensor([pos[s] for s in pairs.s2], device=self.device),
            gold=np.asarray(pairs.gold, dtype=np.float64),
        )

    # ---- forward ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, data: EncodedPairs) -> torch.Tensor:
        """(sentences, hidden) L2-normalised embeddings of the unique sentences, for the current adapter."""
        out = None
        trunk = self._trunk(data) if self.use_cache else None
        for b, batch in enumerate(data.batches):
            if trunk is None:
                hidden = self.model(**batch.inputs).last_hidden_state  # (batch, seq, hidden)
            else:
                hidden = self._top(*trunk[b])
            emb = mean_pool(hidden, batch.inputs["attention_mask"])  # (batch, hidden)
            if out is None:
                out = torch.empty(data.n_sentences, emb.shape[1], dtype=emb.dtype, device=emb.device)
            out[batch.rows] = emb
        return out

    @torch.inference_mode()
    def embed_population(self, data: EncodedPairs, deltas, genomes: torch.Tensor) -> torch.Tensor:
        """(P, sentences, hidden) embeddings for P genomes at once (see :mod:`fitness.batched`)."""
        P = genomes.shape[0]
        trunk = self._trunk(data) if self.use_cache else None
        out = None
        with deltas.apply(genomes):
            for b, batch in enumerate(data.batches):
                nb = batch.inputs["input_ids"].shape[0]
                if trunk is None:
                    hidden = self.model(**{k: v.repeat(P, 1) for k, v in batch.inputs.items()}).last_hidden_state
                else:
                    h, args, kwargs = trunk[b]
                    hidden = self._top(repeat_batch(h, P, nb), repeat_batch(args, P, nb), repeat_batch(kwargs, P, nb))
                emb = mean_pool(hidden, batch.inputs["attention_mask"].repeat(P, 1)).view(P, nb, -1)
                if out is None:
                    out = torch.empty(P, data.n_sentences, emb.shape[-1], dtype=emb.dtype, device=emb.device)
                out[:, batch.rows] = emb
        return out

    def pair_outputs(self, data: EncodedPairs, emb: torch.Tensor | None = None) -> PairOutputs:
        emb = self.embed(data) if emb is None else emb
        cos = (emb[data.i1] * emb[data.i2]).sum(dim=1)  # (pairs,)
        return PairOutputs(cos=cos.double().cpu().numpy(), gold=data.gold)

    def _top(self, hidden: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
        for layer in self.layers[self.first :]:
            hidden = layer(hidden, *args, **kwargs)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return hidden

    def _trunk(self, data: EncodedPairs) -> list:
        return self.trunk.get(data.key, lambda: self._capture(data))

    def _capture(self, data: EncodedPairs) -> list:
        """Per batch: (hidden states entering layer ``first``, its other args, its kwargs)."""
        captured = []

        def grab(module, args, kwargs):
            captured.append((args[0], tuple(args[1:]), dict(kwargs)))
            raise _StopForward

        handle = self.layers[self.first].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            for batch in data.batches:
                try:
                    self.model(**batch.inputs)
                except _StopForward:
                    pass
        finally:
            handle.remove()
        return captured
