"""Several genomes in one forward pass: per-genome low-rank deltas through batched matmuls.

The input batch is repeated once per genome (genome-major), peft's own LoRA path is switched off, and a
forward hook on every LoRA layer adds ``scaling · (x_p A_pᵀ) B_pᵀ`` for each genome p with ``torch.bmm``.
On a GPU this fills the device where one small genome at a time would not; on a CPU it is slower than the
sequential path (`evolora bench`'s batched row) and exists so that the GPU path is tested on every machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from evolora.evolution.genome import GenomeLayout

__all__ = ["PopulationDeltas", "repeat_batch"]


class PopulationDeltas:
    def __init__(self, flat) -> None:
        self.flat = flat
        layout: GenomeLayout = flat.layout
        modules = dict(flat.model.named_modules())
        by_key = {s.key: s for s in layout}
        self.entries = []
        for s in layout:
            if s.kind != "A":
                continue
            name = s.key[: -len(".lora_A.weight")]
            b = by_key[name + ".lora_B.weight"]
            mod = modules[name]
            self.entries.append((mod, s, b, float(mod.scaling["default"])))

    @contextlib.contextmanager
    def apply(self, genomes: torch.Tensor) -> Iterator[int]:
        """Within the context, a forward on an input repeated ``P = len(genomes)`` times (genome-major)
        computes every genome's output. ``genomes``: (P, genes) float32 on the model's device."""
        P = genomes.shape[0]
        handles = []
        for mod, sa, sb, scale in self.entries:
            A = genomes[:, sa.offset : sa.offset + sa.size].view(P, *sa.shape)  # (P, r, in)
            B = genomes[:, sb.offset : sb.offset + sb.size].view(P, *sb.shape)  # (P, out, r)

            def hook(module, inputs, output, A=A, B=B, scale=scale):
                x = inputs[0]  # (P*batch, ..., in)
                xp = x.reshape(P, -1, x.shape[-1])  # (P, batch*seq, in)
                # (P, batch*seq, out)
                delta = torch.bmm(torch.bmm(xp, A.transpose(1, 2)), B.transpose(1, 2))
                return output + (delta * scale).reshape(*x.shape[:-1], -1)

            handles.append(mod.register_forward_hook(hook))
        try:
            # W₀ and peft's LoRA path off: the hooks add every genome's delta
            with self.flat.base_only():
                yield P
        finally:
            for h in handles:
                h.remove()


def repeat_batch(obj, P: int, batch: int):
    """Repeat every tensor whose leading dimension is the batch size P times along it (genome-major);
    recurse into tuples, lists and dicts; leave anything else as it is."""
    if isinstance(obj, torch.Tensor):
        return (
            obj.repeat(P, *([1] * (obj.dim() - 1))) if obj.dim() and obj.shape[0] == batch else obj
        )
    if isinstance(obj, tuple):
        return tuple(repeat_batch(o, P, batch) for o in obj)
    if isinstance(obj, list):
        return [repeat_batch(o, P, batch) for o in obj]
    if isinstance(obj, dict):
        return {k: repeat_batch(v, P, batch) for k, v in obj.items()}
    return obj
