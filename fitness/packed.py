"""Padding-free encoder layers: BERT-family layers run on the real tokens of a whole evaluation set at once.

A sentence batch padded to its longest member wastes every padded row in every projection and feed-forward
matmul, and many small batches make small, inefficient matmuls. Here the real tokens of all batches are
packed into one ``(tokens, hidden)`` matrix: the query/key/value, output and feed-forward projections,
GELU and the layer norms run on it in one call each (they act on each token alone), and only attention —
the one step that mixes tokens — scatters each length-sorted batch back to its padded shape for
``scaled_dot_product_attention`` under the batch's key mask. The arithmetic per real token is what the
padded forward does (the LoRA modules are called as they are, merged or not), so the embeddings agree
to float rounding (on this project's CPU bit for bit: ``tests/fitness/test_packed.py``); the padded rows
that no embedding reads are no longer computed (``evolora bench`` measures ``packed`` against ``padded``).

Supported: encoder layers with BERT's structure (``attention.self.query/key/value``, ``attention.output``,
``intermediate``, ``output``; MiniLM, BERT, RoBERTa-style checkpoints loaded as such) with SDPA or eager
attention. :func:`why_unsupported` says why not otherwise; the evaluator then keeps the padded forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PackedBatches", "PackedUnsupported", "why_unsupported", "run_layers", "pack", "unpack"]


class PackedUnsupported(ValueError):
    """The packed forward was required (``model.packed: true``) for a model it cannot run."""


def why_unsupported(model: torch.nn.Module, layers) -> str:
    """ "" if :func:`run_layers` can run these layers of ``model``, else the reason it cannot."""
    config = getattr(model, "config", None)
    if (
        config is None
        or getattr(config, "is_decoder", False)
        or getattr(config, "add_cross_attention", False)
    ):
        return "it runs encoder self-attention only"
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl not in ("sdpa", "eager"):
        return f"attention implementation {impl!r} (sdpa or eager needed)"
    for i, layer in enumerate(layers):
        sa = getattr(getattr(layer, "attention", None), "self", None)
        out = getattr(getattr(layer, "attention", None), "output", None)
        parts = (sa, out, getattr(layer, "intermediate", None), getattr(layer, "output", None))
        if any(p is None for p in parts) or not all(
            hasattr(sa, n) for n in ("query", "key", "value", "scaling", "num_attention_heads")
        ):
            return f"layer {i} ({type(layer).__name__}) does not have BERT's layer structure"
        if getattr(sa, "position_embedding_type", "absolute") != "absolute":
            return f"layer {i} uses relative position embeddings"
        if getattr(layer, "chunk_size_feed_forward", 0):
            return f"layer {i} chunks its feed-forward"
    return ""


@dataclass
class PackedBatches:
    """Where each padded batch's real tokens sit in the packed matrix."""

    offsets: list[int]  # first packed row of each batch
    keep: list[torch.Tensor]  # (real tokens,) flat positions in the batch's (batch × seq) layout
    shapes: list[tuple[int, int]]  # (batch, seq) of each padded batch
    # (batch, 1, 1, seq) bool key mask; None where nothing is padded
    masks: list[torch.Tensor | None]

    @classmethod
    def from_masks(cls, attention_masks: list[torch.Tensor]) -> PackedBatches:
        offsets, keep, shapes, masks, off = [], [], [], [], 0
        for m in attention_masks:
            b, s = m.shape
            flat = m.reshape(-1).bool()
            keep.append(flat.nonzero().squeeze(1))
            offsets.append(off)
            shapes.append((b, s))
            masks.append(None if bool(flat.all()) else m.bool()[:, None, None, :])
            off += int(keep[-1].numel())
        return cls(offsets, keep, shapes, masks)

    @property
    def tokens(self) -> int:
        return self.offsets[-1] + int(self.keep[-1].numel()) if self.offsets else 0


def pack(padded: list[torch.Tensor], where: PackedBatches) -> torch.Tensor:
    """Per batch (batch, seq, hidden) → (real tokens of all batches, hidden)."""
    return torch.cat([h.reshape(-1, h.shape[-1])[k] for h, k in zip(padded, where.keep)])


def unpack(x: torch.Tensor, where: PackedBatches, b: int) -> torch.Tensor:
    """Batch ``b``'s rows of the packed ``x`` at their padded places: (batch, seq, hidden), padding zero."""
    (n, s), k, off = where.shapes[b], where.keep[b], where.offsets[b]
    out = x.new_zeros(n * s, x.shape[-1])
    out[k] = x[off : off + k.numel()]
    return out.view(n, s, -1)


def _attention(sa, x: torch.Tensor, where: PackedBatches) -> torch.Tensor:
    q, k, v = sa.query(x), sa.key(x), sa.value(x)  # (tokens, hidden) each
    heads = sa.num_attention_heads
    ctx = torch.empty_like(q)
    for b, mask in enumerate(where.masks):
        n, s = where.shapes[b]

        def heads_of(t, b=b, n=n, s=s):  # (batch, heads, seq, head dim) of batch b
            return unpack(t, where, b).view(n, s, heads, -1).transpose(1, 2)

        o = F.scaled_dot_product_attention(
            heads_of(q), heads_of(k), heads_of(v), attn_mask=mask, scale=sa.scaling
        )
        off, keep = where.offsets[b], where.keep[b]
        ctx[off : off + keep.numel()] = o.transpose(1, 2).reshape(n * s, -1)[keep]
    return ctx


def run_layers(layers, x: torch.Tensor, where: PackedBatches) -> torch.Tensor:
    """The packed tokens ``x`` (tokens, hidden) entering ``layers[0]`` → leaving ``layers[-1]`` (eval mode)."""
    for layer in layers:
        if layer.training:
            raise RuntimeError("the packed layers run in eval mode only (they skip dropout)")
        att = layer.attention
        a = att.output.LayerNorm(att.output.dense(_attention(att.self, x, where)) + x)
        h = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(a))
        x = layer.output.LayerNorm(layer.output.dense(h) + a)
    return x
