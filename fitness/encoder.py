"""Sentence embeddings from an adapted encoder, as sentence-transformers computes them for MiniLM
(mean pooling over the attention mask, then L2 normalisation), with a frozen-trunk cache.

Frozen-trunk cache: when the LoRA sits only on a top slice of layers (first adapted layer ``L`` and every
layer above it), the hidden states entering layer ``L`` are the same for every genome. They are computed
once per evaluation batch (captured by a pre-hook on layer ``L``) and each genome runs only layers
``L..N-1`` (`evolora bench` measures what that saves: the cached-1 and cached-2 rows). The cache is keyed
by the batch's content, so a new batch can never be served a stale trunk.

Trunk memo (:meth:`EncoderEvaluator.memoise`): when the batches are many and small and each is new (an ES
scoring every antithetic pair on a batch of its own), the per-batch cache never hits and the trunk costs as
much as the adapted layers. The memo keeps each train sentence's hidden states entering layer ``L`` instead,
computed once per sentence in fixed chunks of the length-sorted train sentences — so a sentence's states are
the same bits whichever batch first needs it, and a resumed run computes what an uninterrupted one did. A
batch of memoised sentences is assembled from them (right-padded with zeros, which the attention mask hides)
with the layer's other arguments taken from a pass through the embeddings alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from evolora.fitness.batched import repeat_batch
from evolora.fitness.packed import (
    PackedBatches,
    PackedUnsupported,
    pack,
    run_layers,
    unpack,
    why_unsupported,
)
from evolora.fitness.pairs import PairOutputs, Pairs
from evolora.fitness.trunk import TrunkCache

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
    sentences: list[str]  # the unique sentences, in the order ``_Batch.rows`` indexes
    batches: list[_Batch]
    n_sentences: int
    i1: torch.Tensor  # (pairs,) index of each pair's first sentence
    i2: torch.Tensor
    gold: np.ndarray  # (pairs,)
    # where each batch's real tokens sit when packed (``fitness.packed``)
    packed: PackedBatches | None = None
    pairs: Pairs | None = None  # the pairs encoded (texts and columns, for fitness plug-ins)


class _StopForward(Exception):
    pass


def _same(a, b) -> bool:
    """Structural equality of captured layer arguments (tensors compared exactly)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a is b or a == b


class EncoderEvaluator:
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        adapted_layers: list[int],
        device: torch.device,
        batch_size: int = 64,
        max_length: int = 128,
        cache: bool | str = "auto",
        cache_entries: int = 4,
        packed: bool | str = "auto",
    ) -> None:
        self.model, self.tok, self.device = model, tokenizer, device
        self.batch_size, self.max_length = batch_size, max_length
        self.trunk = TrunkCache(model, adapted_layers, cache, cache_entries)
        self.layers, self.first = self.trunk.layers, self.trunk.first
        self.use_cache = self.trunk.enabled
        why = why_unsupported(
            model.get_base_model() if hasattr(model, "get_base_model") else model, self.layers
        )
        if packed is True and why:
            raise PackedUnsupported(f"the packed forward cannot run this model: {why}")
        self.packed = bool(packed) and not why  # padding-free layers (``fitness.packed``)
        self._tokens: dict[str, dict] = {}  # sentence → tokenizer features
        # trunk memo: sentence → its fixed chunk (None: no memo)
        self._chunk_of: dict[str, int] | None = None
        self._chunks: list[list[str]] = []
        self._span: dict[str, tuple[int, int]] = {}  # sentence → (first row, tokens) in the store
        # (train tokens, hidden) states entering layer ``first``
        self._store: torch.Tensor | None = None
        self._filled: list[bool] = []
        self.memo_chunks_computed = 0  # for tests and benchmarks

    @property
    def memoised(self) -> bool:
        """Whether the trunk memo is on (:meth:`memoise`)."""
        return self._chunk_of is not None

    @property
    def trunk_computations(self) -> int:
        return self.trunk.computations

    # ---- data ------------------------------------------------------------------------------------
    def _tokenise(self, sentences: list[str]) -> list[dict]:
        # each sentence once per evaluator
        new = [s for s in dict.fromkeys(sentences) if s not in self._tokens]
        if new:
            enc = self.tok(new, truncation=True, max_length=self.max_length)
            for i, s in enumerate(new):
                self._tokens[s] = {k: enc[k][i] for k in enc.keys()}
        return [self._tokens[s] for s in sentences]

    def _pad(self, feats: list[dict]) -> dict[str, torch.Tensor]:
        padded = self.tok.pad(feats, return_tensors="pt")
        return {
            k: v.to(self.device)
            for k, v in padded.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }

    def encode(self, pairs: Pairs) -> EncodedPairs:
        sentences = list(dict.fromkeys(pairs.s1 + pairs.s2))  # unique, first-seen order
        pos = {s: i for i, s in enumerate(sentences)}
        feats_all = self._tokenise(sentences)
        lengths = np.array([len(f["input_ids"]) for f in feats_all])
        order = np.argsort(lengths, kind="stable")  # batch by length: little padding
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batches.append(
                _Batch(
                    torch.as_tensor(rows, device=self.device),
                    self._pad([feats_all[i] for i in rows]),
                )
            )
        h = hashlib.sha256("\x1f".join(sentences).encode()).hexdigest()
        return EncodedPairs(
            key=h,
            sentences=sentences,
            batches=batches,
            n_sentences=len(sentences),
            i1=torch.tensor([pos[s] for s in pairs.s1], device=self.device),
            i2=torch.tensor([pos[s] for s in pairs.s2], device=self.device),
            gold=pairs.gold,  # read-only (Pairs): what terms get cannot change the stored labels
            packed=PackedBatches.from_masks([b.inputs["attention_mask"] for b in batches])
            if self.packed
            else None,
            pairs=pairs,
        )

    # ---- forward ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, data: EncodedPairs) -> torch.Tensor:
        """(sentences, hidden) L2-normalised embeddings of the unique sentences, for the current adapter."""
        if self.packed and data.packed is not None:
            return self._embed_packed(data)
        out = None
        trunk = self._trunk(data) if self.use_cache else None
        for b, batch in enumerate(data.batches):
            if trunk is None:
                hidden = self.model(**batch.inputs).last_hidden_state  # (batch, seq, hidden)
            else:
                hidden = self._top(*trunk[b])
            emb = mean_pool(hidden, batch.inputs["attention_mask"])  # (batch, hidden)
            if out is None:
                out = torch.empty(
                    data.n_sentences, emb.shape[1], dtype=emb.dtype, device=emb.device
                )
            out[batch.rows] = emb
        return out

    def _embed_packed(self, data: EncodedPairs) -> torch.Tensor:
        """:meth:`embed` through the padding-free layers: every batch's real tokens in one matrix."""
        start = self.trunk.start if self.use_cache else 0
        entering = (
            self._trunk(data)
            if self.use_cache
            else self._capture([b.inputs for b in data.batches], 0)
        )
        where = data.packed
        x = run_layers(self.layers[start:], pack([h for h, _, _ in entering], where), where)
        out = torch.empty(data.n_sentences, x.shape[-1], dtype=x.dtype, device=x.device)
        for b, batch in enumerate(data.batches):
            out[batch.rows] = mean_pool(unpack(x, where, b), batch.inputs["attention_mask"])
        return out

    @torch.inference_mode()
    def embed_population(self, data: EncodedPairs, deltas, genomes: torch.Tensor) -> torch.Tensor:
        """(P, sentences, hidden) embeddings for P genomes at once (see :mod:`evolora.fitness.batched`)."""
        P = genomes.shape[0]
        trunk = self._trunk(data) if self.use_cache else None
        out = None
        with deltas.apply(genomes):
            for b, batch in enumerate(data.batches):
                nb = batch.inputs["input_ids"].shape[0]
                if trunk is None:
                    hidden = self.model(
                        **{k: v.repeat(P, 1) for k, v in batch.inputs.items()}
                    ).last_hidden_state
                else:
                    h, args, kwargs = trunk[b]
                    hidden = self._top(
                        repeat_batch(h, P, nb),
                        repeat_batch(args, P, nb),
                        repeat_batch(kwargs, P, nb),
                    )
                emb = mean_pool(hidden, batch.inputs["attention_mask"].repeat(P, 1)).view(P, nb, -1)
                if out is None:
                    out = torch.empty(
                        P, data.n_sentences, emb.shape[-1], dtype=emb.dtype, device=emb.device
                    )
                out[:, batch.rows] = emb
        return out

    def pair_outputs(self, data: EncodedPairs, emb: torch.Tensor | None = None) -> PairOutputs:
        emb = self.embed(data) if emb is None else emb  # (sentences, hidden), L2-normalised
        e1, e2 = emb[data.i1], emb[data.i2]  # (pairs, hidden)
        cos = (e1 * e2).sum(dim=1)  # (pairs,)
        return PairOutputs(
            cos=cos.double().cpu().numpy(),
            gold=data.gold,
            pairs=data.pairs,
            emb1=e1.float().cpu().numpy(),
            emb2=e2.float().cpu().numpy(),
        )

    def _top(self, hidden: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
        for layer in self.layers[self.trunk.start :]:
            hidden = layer(hidden, *args, **kwargs)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return hidden

    def _trunk(self, data: EncodedPairs) -> list:
        chunk_of = self._chunk_of
        start = self.trunk.start
        if (
            start == self.first
            and chunk_of is not None
            and all(s in chunk_of for s in data.sentences)
        ):
            return self._assemble(data)
        return self.trunk.get(
            self.trunk.key(data.key), lambda: self._capture([b.inputs for b in data.batches], start)
        )

    def _capture(self, inputs: list[dict], layer: int | None = None) -> list:
        """Per batch of ``inputs``: (hidden states entering layer ``layer`` (default ``first``), its other
        args, its kwargs); the layers from ``layer`` up are not run."""
        captured = []

        def grab(module, args, kwargs):
            captured.append((args[0], tuple(args[1:]), dict(kwargs)))
            raise _StopForward

        handle = self.layers[self.first if layer is None else layer].register_forward_pre_hook(
            grab, with_kwargs=True
        )
        try:
            for batch in inputs:
                try:
                    self.model(**batch)
                except _StopForward:
                    pass
        finally:
            handle.remove()
        return captured

    # ---- trunk memo --------------------------------------------------------------------------------
    def memo_supported(self) -> str:
        """Why the trunk memo cannot be used with this model ("" if it can): it needs the trunk cache (LoRA on
        a top slice of layers, not the first), right padding, and the arguments of layer ``first`` other than
        the hidden states to be those of layer 0 (what a pass through the embeddings alone gives)."""
        if not self.use_cache or self.first == 0:
            return "it needs LoRA on a top slice of layers above the first (the trunk cache)"
        if getattr(self.tok, "padding_side", "right") != "right":
            return "it needs a right-padding tokenizer"
        probe = self._pad(self._tokenise(["a short probe sentence", "a probe"]))
        with torch.inference_mode():
            ((_, a0, k0),) = self._capture([probe], 0)
            ((_, a1, k1),) = self._capture([probe])
        if not _same(a0, a1) or not _same(k0, k1):
            return f"layer {self.first} is called with other arguments than layer 0"
        return ""

    def memoise(self, sentences: list[str]) -> None:
        """Keep the trunk of these (train) sentences per sentence from now on: fixed chunks of ``batch_size``
        sentences in length order (ties in the given order), each computed in full the first time one of its
        sentences is needed. Raises ValueError if :meth:`memo_supported` says no."""
        why = self.memo_supported()
        if why:
            raise ValueError(f"the trunk memo cannot be used: {why}")
        unique = list(dict.fromkeys(sentences))
        lengths = np.array([len(f["input_ids"]) for f in self._tokenise(unique)])
        order = np.argsort(lengths, kind="stable")
        self._chunks = [
            [unique[i] for i in order[c : c + self.batch_size]]
            for c in range(0, len(order), self.batch_size)
        ]
        self._chunk_of = {s: c for c, chunk in enumerate(self._chunks) for s in chunk}
        starts = np.concatenate([[0], np.cumsum(lengths)])
        self._span = {
            s: (int(starts[i]), int(lengths[i])) for i, s in enumerate(unique)
        }  # rows in the store
        self._tokens_total = int(starts[-1])
        self._filled = [False] * len(self._chunks)
        self._store = None

    @torch.inference_mode()
    def fill_memo(self, chunks: list[int] | None = None) -> None:
        """Compute the memo's missing chunks (``chunks``, default all of them)."""
        for c in sorted(range(len(self._chunks)) if chunks is None else chunks):
            if self._filled[c]:
                continue
            chunk = self._chunks[c]
            inputs = self._pad(self._tokenise(chunk))
            ((h, _, _),) = self._capture([inputs])
            if self._store is None:  # one block for every train token: no per-sentence allocations
                self._store = torch.empty(
                    self._tokens_total, h.shape[-1], dtype=h.dtype, device=h.device
                )
            for j, s in enumerate(chunk):
                start, n = self._span[s]
                self._store[start : start + n] = h[j, :n]
            self._filled[c] = True
            self.memo_chunks_computed += 1

    @torch.inference_mode()
    def _assemble(self, data: EncodedPairs) -> list:
        self.fill_memo(list({self._chunk_of[s] for s in data.sentences}))
        out = []
        # the embeddings only, for the layer's other arguments (masks) of each batch
        for batch, (emb, args, kwargs) in zip(
            data.batches, self._capture([b.inputs for b in data.batches], 0)
        ):
            hidden = torch.zeros_like(emb)
            for j, r in enumerate(batch.rows.tolist()):
                start, n = self._span[data.sentences[r]]
                hidden[j, :n] = self._store[start : start + n]
            out.append((hidden, args, kwargs))
        return out
