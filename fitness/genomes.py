"""What a genome holds, and how it becomes the LoRA weights a model computes with.

* ``full``: the genome *is* every LoRA A and B matrix, laid out as the PEFT state dict (the identity map).
* ``xs``: LoRA-XS (Bałazy et al., 2024). For each adapted weight W₀ = U Σ Vᵀ the factors are frozen at its
  truncated SVD, A = V_rᵀ and B = U_r Σ_r · R, and the genome holds only the r×r cores R. The search space is
  (in + out) / r times smaller than LoRA's (2,368 genes instead of 73,728 for rank 8 on every linear module
  of all-MiniLM-L6-v2) and lies along each weight's own principal directions, which is what a gradient-free
  search needs: an antithetic ES pair measures one direction, so fewer directions that matter more is the
  lever. It is still a LoRA: ``expand`` writes A and B, and the adapter exports as a stock PEFT directory.
  R = 0 is exactly the base model.

The SVD is computed once per task in float64 on the CPU, with each singular pair's sign fixed (the largest
entry of each left singular vector is positive), so the same weights give the same factors on every host and
device, and a checkpoint resumed elsewhere means the same adapter.
"""

from __future__ import annotations

import numpy as np
import torch

from evolution.genome import GenomeLayout

from .lora import FlatLoRA

__all__ = ["GENOMES", "GenomeMap", "FullGenome", "XSGenome", "make_genome_map"]

GENOMES = ("full", "xs")


class GenomeMap:
    """genome → the full LoRA vector in ``flat.layout`` order (what ``FlatLoRA.write`` takes)."""

    layout: GenomeLayout

    def expand(self, genome: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def seed(self) -> np.ndarray:
        """The generation-0 genome: exactly the base model."""
        raise NotImplementedError


class FullGenome(GenomeMap):
    def __init__(self, flat: FlatLoRA) -> None:
        self.layout = flat.layout
        self._seed = flat.read()  # the peft initialisation: A kaiming-uniform, B = 0

    def expand(self, genome: np.ndarray) -> np.ndarray:
        return genome

    def seed(self) -> np.ndarray:
        return self._seed.copy()


def svd_factors(w0: torch.Tensor, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(A = V_rᵀ (r, in), basis = U_r Σ_r (out, r)) of ``w0`` (out, in), float32, with deterministic signs."""
    u, s, vh = torch.linalg.svd(w0.detach().to("cpu", torch.float64), full_matrices=False)
    u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    sign = torch.sign(u.gather(0, u.abs().argmax(dim=0, keepdim=True)))  # (1, r): largest |entry| of u_k → +
    sign[sign == 0] = 1
    u, vh = u * sign, vh * sign.T
    return vh.numpy().astype(np.float32), (u * s).numpy().astype(np.float32)


class XSGenome(GenomeMap):
    """One r×r core per adapted matrix between frozen SVD factors (see the module docstring)."""

    CORE = ".lora_core"  # genome key of a core: "<module>.lora_core", shape (r, r)

    def __init__(self, flat: FlatLoRA) -> None:
        by_key = {s.key: s for s in flat.layout}
        pristine = flat.pristine_weights()
        full = np.zeros(flat.layout.size, np.float32)  # B = 0 everywhere: R = 0 is the base model
        shapes, bases = {}, []
        for s in flat.layout:
            if s.kind != "A":
                continue
            rank, name = s.shape[0], s.key[: -len(".lora_A.weight")]
            b = by_key[name + ".lora_B.weight"]
            a, basis = svd_factors(pristine[s.key], rank)
            full[s.offset : s.offset + s.size] = a.ravel()
            shapes[name + self.CORE] = (rank, rank)
            bases.append((b, basis))
        self.layout = GenomeLayout.from_shapes(shapes)
        self._full = full
        self._blocks = [(core, b, basis) for core, (b, basis) in zip(self.layout, bases)]  # (core, B slice, U_r Σ_r)

    def expand(self, genome: np.ndarray) -> np.ndarray:
        self.layout.check(genome)
        full = self._full.copy()
        for core, b, basis in self._blocks:
            full[b.offset : b.offset + b.size] = (basis @ core.view(genome)).ravel()
        return full

    def seed(self) -> np.ndarray:
        return np.zeros(self.layout.size, np.float32)


def make_genome_map(kind: str, flat: FlatLoRA) -> GenomeMap:
    if kind == "xs":
        return XSGenome(flat)
    if kind == "full":
        return FullGenome(flat)
    raise ValueError(f"genome must be one of {', '.join(GENOMES)}, got {kind!r}")
