"""What a genome holds, and how it becomes the LoRA weights a model computes with.

* ``full``: the genome *is* every LoRA A and B matrix, laid out as the PEFT state dict (the identity map).
* ``xs``: LoRA-XS (Bałazy et al., 2024). For each adapted weight W₀ = U Σ Vᵀ the factors are frozen at its
  truncated SVD, A = V_rᵀ and B = U_r Σ_r · R, and the genome holds only the r×r cores R. The search space is
  (in + out) / r times smaller than LoRA's (2,368 genes instead of 73,728 for rank 8 on every linear module
  of all-MiniLM-L6-v2) and lies along each weight's own principal directions, which is what a gradient-free
  search needs: an antithetic ES pair measures one direction, so fewer directions that matter more is the
  lever. It is still a LoRA: ``expand`` writes A and B, and the adapter exports as a stock PEFT directory.
  R = 0 is exactly the base model.

``lora.init: eva`` (:func:`eva_seed`) starts a full genome with each LoRA A spanning the top principal
directions of its module's inputs on train examples instead of peft's random kaiming draw (B stays 0, so the
start is still exactly the base model); with ``lora.a_subspace: k`` A then moves only within the top k of
them, and with ``lora.b_subspace: k`` each value projection's B moves only within the top k directions its
output's consumer reads (both :class:`SubspaceGenome`).

The SVD is computed once per task in float64 on the CPU, with each singular pair's sign fixed (the largest
entry of each left singular vector is positive), so the same weights give the same factors on every host and
device, and a checkpoint resumed elsewhere means the same adapter.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from evolora.evolution.errors import ConfigError
from evolora.evolution.genome import GenomeLayout
from evolora.fitness.lora import FlatLoRA

__all__ = [
    "GenomeMap",
    "FullGenome",
    "XSGenome",
    "SubspaceGenome",
    "consumer_directions",
    "make_genome_map",
    "eva_seed",
]


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


def _column_signs(cols: torch.Tensor) -> torch.Tensor:
    """(1, n): the sign that makes each column's largest |entry| positive (1 for an all-zero column)."""
    sign = torch.sign(cols.gather(0, cols.abs().argmax(dim=0, keepdim=True)))
    sign[sign == 0] = 1
    return sign


def svd_factors(w0: torch.Tensor, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(A = V_rᵀ (r, in), basis = U_r Σ_r (out, r)) of ``w0`` (out, in), float32, with deterministic signs."""
    u, s, vh = torch.linalg.svd(w0.detach().to("cpu", torch.float64), full_matrices=False)
    u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    sign = _column_signs(u)  # (1, r): largest |entry| of u_k → +
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
        # (core, B slice, U_r Σ_r)
        self._blocks = [(core, b, basis) for core, (b, basis) in zip(self.layout, bases)]

    def expand(self, genome: np.ndarray) -> np.ndarray:
        self.layout.check(genome)
        full = self._full.copy()
        for core, b, basis in self._blocks:
            full[b.offset : b.offset + b.size] = (basis @ core.view(genome)).ravel()
        return full

    def seed(self) -> np.ndarray:
        return np.zeros(self.layout.size, np.float32)


def make_genome_map(kind: str, flat: FlatLoRA) -> GenomeMap:
    """``lora.genome`` (one of :data:`fitness.spec.GENOMES`, checked when the spec is made) → its map."""
    return XSGenome(flat) if kind == "xs" else FullGenome(flat)


def _input_moments(flat: FlatLoRA, a_slices: list, batches) -> tuple[dict, dict]:
    """The uncentred second moment (summed, float64) and token count of each adapted module's inputs, the
    frozen base running on ``batches``."""
    modules = dict(flat.model.named_modules())
    moments: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    mask_now: list[torch.Tensor] = []
    hooks = []
    for s in a_slices:
        base = modules[s.key[: -len(".lora_A.weight")]].base_layer

        def grab(module, args, key=s.key):
            x = args[0].detach()
            x = x.reshape(-1, x.shape[-1])[mask_now[0]].to("cpu", torch.float64)
            moments[key] = moments[key] + x.T @ x if key in moments else x.T @ x
            counts[key] = counts.get(key, 0) + x.shape[0]

        hooks.append(base.register_forward_pre_hook(grab))
    try:
        with flat.base_only():
            for kwargs, mask in batches:
                mask_now[:] = [mask.reshape(-1).bool()]
                flat.model(**kwargs)
    finally:
        for h in hooks:
            h.remove()
    return moments, counts


@torch.inference_mode()
def eva_seed(
    flat: FlatLoRA,
    seed: np.ndarray,
    batches: Iterable[tuple[dict, torch.Tensor]],
    subspace: int | None = None,
):
    """``seed`` (a full genome, B = 0) with every LoRA A replaced by the top-r principal directions of the
    inputs its module sees on ``batches`` — data-driven A in the spirit of EVA (Paischer et al. 2024,
    "explained variance adaptation"). ``batches`` yields (model keyword arguments, token mask); the frozen
    base model runs on each, and the uncentred second moment C = E[x xᵀ] of each adapted module's input
    tokens (mask 1) is accumulated in float64. A's rows are C's top-r eigenvectors (sign: largest |entry|
    positive), scaled so that E|A x|² equals what peft's kaiming-uniform A gives in expectation,
    r · tr(C) / (3 · in): σ and the learning rate keep their meaning, and the perturbations of B now move
    the outputs along the directions the inputs actually occupy (a random A spends most of its rows on
    directions that carry about 1 / in of the input variance each). B = 0 is untouched, so the result is still
    exactly the base model. Deterministic: same weights, examples and thread count → the same bits.
    With ``subspace`` k: also each module's top-k directions, (k, in) with orthonormal rows, as
    (genome, {A key: directions}) for :class:`SubspaceGenome`."""
    a_slices = [s for s in flat.layout if s.kind == "A"]
    moments, counts = _input_moments(flat, a_slices, batches)
    out = np.array(seed, dtype=np.float32, copy=True)
    dirs = {}
    for s in a_slices:
        if not counts.get(s.key):
            raise ValueError(f"lora.init: eva saw no input tokens for {s.key}")
        c = (moments[s.key] / counts[s.key]).numpy()
        rank, width = s.shape
        k = subspace or rank
        if not rank <= k <= width:
            raise ConfigError(
                "lora.a_subspace",
                f"must be between lora.rank ({rank}) and the input width of "
                f"{s.key[: -len('.lora_A.weight')]} ({width})",
                k,
            )
        vals, vecs = np.linalg.eigh(c)  # ascending
        top = vecs[:, ::-1][:, :k].T.copy()  # (k, in)
        top *= np.sign(top[np.arange(k), np.abs(top).argmax(axis=1)])[:, None]
        captured = float(vals[::-1][:rank].sum())
        scale = (
            np.sqrt(rank * float(np.trace(c)) / (3.0 * width) / captured) if captured > 0 else 0.0
        )
        out[s.offset : s.offset + s.size] = (top[:rank] * scale).astype(np.float32).ravel()
        dirs[s.key] = top.astype(np.float32)
    return (out, dirs) if subspace else out


# Where a value projection's output goes: the linear layer that reads it channel for channel (attention mixes
# tokens, not channels), by the value module's name → the consumer's name. BERT-family encoders and
# LFM2 / Llama-family causal models.
VALUE_CONSUMERS = (
    (".attention.self.value", ".attention.output.dense"),
    (".self_attn.v_proj", ".self_attn.out_proj"),
    (".self_attn.v_proj", ".self_attn.o_proj"),
)


def _grouped_query_columns(
    w: torch.Tensor, width: int, name: str, hd: int | None, k: int
) -> torch.Tensor:
    """Grouped-query attention: KV value heads, each read by `rep` consecutive query heads' columns of W_o; a
    direction's strength is what all of them pass on, so those column blocks are stacked: (rep·hidden, KV·hd)."""
    rep = w.shape[1] // width
    if hd is None or rep * width != w.shape[1] or width % hd:
        raise ConfigError(
            "lora.b_subspace",
            f"cannot match the {width} value channels of {name} to the "
            f"{w.shape[1]} inputs of its output projection",
            k,
        )
    return (
        w.reshape(w.shape[0], width // hd, rep, hd)
        .permute(2, 0, 1, 3)
        .reshape(rep * w.shape[0], width)
    )


def consumer_directions(flat: FlatLoRA, k: int) -> dict[str, np.ndarray]:
    """{B key: (out, k) orthonormal columns}: for each adapted value projection, the top-k right singular vectors
    of the linear layer that consumes its output (W_o = U Σ Vᵀ; the value-space directions W_o passes on most
    strongly), float64 SVD on the CPU with deterministic signs. A change of B along the other directions reaches
    the layer's output only through W_o's small singular values, so most of the fitness gradient with respect
    to B lies in the top few of them. Other adapted
    modules get no entry (their B moves freely); a layout without a value projection is an error."""
    modules = dict(flat.model.named_modules())
    pristine = flat.pristine_weights()  # adapted modules' W₀, keyed by their A key
    out = {}
    for s in flat.layout:
        if s.kind != "B":
            continue
        name = s.key[: -len(".lora_B.weight")]
        consumer = next(
            (
                name[: -len(v)] + c
                for v, c in VALUE_CONSUMERS
                if name.endswith(v) and name[: -len(v)] + c in modules
            ),
            None,
        )
        if consumer is None:
            continue
        width = s.shape[0]
        if not s.shape[1] <= k <= width:
            raise ConfigError(
                "lora.b_subspace",
                f"must be between lora.rank ({s.shape[1]}) and the output width of "
                f"{name} ({width})",
                k,
            )
        # (hidden, heads·hd); an adapted consumer's frozen W₀, never its merged weights
        w = (
            pristine.get(consumer + ".lora_A.weight", modules[consumer].weight)
            .detach()
            .to("cpu", torch.float64)
        )
        if w.shape[1] != width:
            w = _grouped_query_columns(
                w, width, name, getattr(modules[name.rsplit(".", 1)[0]], "head_dim", None), k
            )
        _, _, vh = torch.linalg.svd(w, full_matrices=False)
        v = vh[:k].T  # (out, k)
        out[s.key] = (v * _column_signs(v)).numpy().astype(np.float32)
    if not out:
        raise ConfigError(
            "lora.b_subspace",
            "holds the B of value projections (BERT `value`, LFM2 / Llama "
            "`v_proj`) in the directions their output's consumer reads; no adapted module is one",
            k,
        )
    return out


class SubspaceGenome(GenomeMap):
    """LoRA factors held in fixed subspaces, the genome holding their coordinates under the same keys.

    * ``lora.a_subspace: k`` (with ``lora.init: eva``): each LoRA A moves only within the top-k principal
      directions of its module's inputs, A = R V_kᵀ, the genome holding the r×k coordinates R. A gradient LoRA's
      A reads its inputs almost only along those directions, so an ES perturbation of A elsewhere measures
      nothing the train data constrains and leaves noise where unseen text may look; here it cannot, and A has
      k / in of its genes.
    * ``lora.b_subspace: k``: each value projection's B moves only within the top-k directions its consumer
      reads (:func:`consumer_directions`), B = U_k Q, the genome holding the k×r coordinates Q: an antithetic
      pair measures its direction where a change of B reaches the output, with k / out of B's genes.

    The seed expands to the full seed (to float32 rounding; B = 0: exactly the base model). The directions are
    orthonormal, so |B A|_F is |Q R|_F: distances between genomes (speciation's ``delta_l2``) mean what they mean
    for a full genome."""

    def __init__(
        self,
        flat: FlatLoRA,
        full_seed: np.ndarray,
        a_dirs: dict[str, np.ndarray] | None = None,
        b_dirs: dict[str, np.ndarray] | None = None,
    ) -> None:
        a_dirs, b_dirs = a_dirs or {}, b_dirs or {}
        shapes, self._blocks, self._copy = {}, [], []
        for s in flat.layout:
            if s.key in a_dirs:
                shapes[s.key] = (s.shape[0], a_dirs[s.key].shape[0])  # R: (r, k)
            elif s.key in b_dirs:
                shapes[s.key] = (b_dirs[s.key].shape[1], s.shape[1])  # Q: (k, r)
            else:
                shapes[s.key] = s.shape
        self.layout = GenomeLayout.from_shapes(shapes)
        self._flat_layout = flat.layout
        seed = np.zeros(self.layout.size, np.float32)
        for g, f in zip(self.layout, flat.layout):
            full = f.view(full_seed).astype(np.float64)
            if f.key in a_dirs:
                v = a_dirs[f.key]  # (k, in), orthonormal rows
                seed[g.offset : g.offset + g.size] = (full @ v.T).ravel()  # R = A V_k
                self._blocks.append((g, f, v, "A"))
            elif f.key in b_dirs:
                u = b_dirs[f.key]  # (out, k), orthonormal columns
                seed[g.offset : g.offset + g.size] = (u.T @ full).ravel()  # Q = U_kᵀ B
                self._blocks.append((g, f, u, "B"))
            else:
                seed[g.offset : g.offset + g.size] = f.view(full_seed).ravel()
                self._copy.append((g, f))
        self._seed = seed

    def expand(self, genome: np.ndarray) -> np.ndarray:
        self.layout.check(genome)
        full = np.empty(self._flat_layout.size, np.float32)
        for g, f in self._copy:
            full[f.offset : f.offset + f.size] = genome[g.offset : g.offset + g.size]
        for g, f, d, kind in self._blocks:
            x = g.view(genome)
            full[f.offset : f.offset + f.size] = (
                x @ d if kind == "A" else d @ x
            ).ravel()  # A = R V_kᵀ, B = U_k Q
        return full

    def seed(self) -> np.ndarray:
        return self._seed.copy()
