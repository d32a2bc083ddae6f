"""The torch side of genomes: LoRA on a frozen base, every LoRA parameter aliased into one flat buffer.

``FlatLoRA.write(genome)`` is one ``copy_`` into that buffer (≈5 µs), after which the peft model computes
with the genome's adapter. The genome layout (``evolution.GenomeLayout``) is taken from peft's own saved
state-dict keys, so a genome converts to a stock PEFT adapter directory and back, bit-equal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from evolora.evolution.errors import ConfigError
from evolora.evolution.genome import GenomeLayout, layer_of
from evolora.fitness.models import find_layers

__all__ = ["attach_lora", "FlatLoRA", "block_targets", "BLOCK_OF"]

# parent-module name → block type (LFM2: self_attn / conv / feed_forward; Llama-like: self_attn / mlp)
BLOCK_OF = {
    "self_attn": "attention",
    "attention": "attention",
    "attn": "attention",
    "conv": "conv",
    "feed_forward": "feed_forward",
    "mlp": "feed_forward",
}
_LAYER_NAME = re.compile(r"\.(\d+)\.(\w+)\.(\w+)$")


def block_targets(
    model: torch.nn.Module, blocks: dict[str, dict]
) -> tuple[list[str], dict[str, int], dict[str, float]]:
    """Resolve block-type targeting to explicit module names (so ``out_proj`` of an attention block and of a
    conv block are told apart by the layer they live in), with a rank and alpha per block type.

    ``blocks`` maps a block type (attention / conv / feed_forward) to ``{"modules": [...], "rank": r,
    "alpha": a, "layers": [...] | None}``. Returns (module names, rank_pattern, alpha_pattern) for peft."""
    found: dict[str, list[tuple[int, str, str]]] = {}
    for name, mod in model.named_modules():
        m = _LAYER_NAME.search(name)
        if isinstance(mod, torch.nn.Linear) and m and m.group(2) in BLOCK_OF:
            found.setdefault(BLOCK_OF[m.group(2)], []).append((int(m.group(1)), m.group(3), name))
    names, ranks, alphas = [], {}, {}
    for btype, spec in blocks.items():
        if btype not in found:
            raise ConfigError(
                f"lora.blocks.{btype}",
                f"this model has no such blocks (has: {', '.join(sorted(found))})",
                btype,
            )
        have = {leaf for _, leaf, _ in found[btype]}
        bad = [x for x in spec["modules"] if x not in have]
        if bad:
            raise ConfigError(
                f"lora.blocks.{btype}.modules",
                f"not in {btype} blocks (has: {', '.join(sorted(have))})",
                bad,
            )
        layers_here = sorted({i for i, _, _ in found[btype]})
        if spec.get("layers") is not None:
            missing = [i for i in spec["layers"] if i not in layers_here]
            if missing:
                raise ConfigError(
                    f"lora.blocks.{btype}.layers",
                    f"{btype} blocks are in layers {layers_here}",
                    missing,
                )
        for i, leaf, name in found[btype]:
            if leaf in spec["modules"] and (spec.get("layers") is None or i in spec["layers"]):
                names.append(name)
                ranks[re.escape(name)] = int(spec["rank"])
                alphas[re.escape(name)] = float(spec["alpha"])
    if not names:
        raise ConfigError("lora.blocks", "selects no module", sorted(blocks))
    return names, ranks, alphas


def attach_lora(
    model: torch.nn.Module,
    rank: int,
    alpha: float,
    target_modules: Sequence[str],
    layers: Sequence[int] | None,
    seed: int,
    dropout: float = 0.0,
    blocks: dict[str, dict] | None = None,
) -> PeftModel:
    """Wrap ``model`` with a LoRA adapter; A is initialised as peft does (kaiming-uniform, from a torch
    generator seeded with ``seed``), B = 0, so the adapted model starts exactly at the base model.
    With ``blocks``, targets are chosen by block type (see :func:`block_targets`) instead."""
    if blocks:
        names, ranks, alphas = block_targets(model, blocks)
        cfg = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            target_modules=names,
            rank_pattern=ranks,
            alpha_pattern=alphas,
            lora_dropout=dropout,
            bias="none",
        )
        return _wrap(model, cfg, seed)
    n_layers = len(find_layers(model))
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad:
            raise ConfigError(
                "lora.layers", f"layer indices must be in [0, {n_layers - 1}]", list(layers)
            )
    names = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    missing = [t for t in target_modules if t not in names]
    if missing:
        raise ConfigError(
            "lora.target_modules",
            f"no such Linear module in this model (has: {', '.join(sorted(names))})",
            missing,
        )
    cfg = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(target_modules),
        layers_to_transform=list(layers) if layers is not None else None,
        lora_dropout=dropout,
        bias="none",
    )
    return _wrap(model, cfg, seed)


def _wrap(model: torch.nn.Module, cfg: LoraConfig, seed: int) -> PeftModel:
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        peft_model = get_peft_model(model, cfg)
    finally:
        torch.random.set_rng_state(state)
    peft_model.eval()
    for (
        name,
        module,
    ) in peft_model.named_modules():  # a rank past a matrix's smaller side adds nothing but genes
        r = (
            getattr(module, "r", {}).get("default")
            if isinstance(getattr(module, "r", None), dict)
            else None
        )
        base = getattr(module, "base_layer", None)
        if r and isinstance(base, torch.nn.Linear) and r > min(base.in_features, base.out_features):
            field = "lora.blocks" if cfg.rank_pattern else "lora.rank"
            raise ConfigError(
                field,
                f"rank {r} is larger than {name.removeprefix('base_model.model.')}'s smaller "
                f"dimension ({min(base.in_features, base.out_features)})",
                r,
            )
    return peft_model


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class FlatLoRA:
    """All LoRA weights of ``peft_model`` as views into one flat float32 buffer, in genome layout order.

    ``merged=True``: writing a genome also folds it into the frozen weights, ``W = W₀ + s·B·A`` (one
    ``addmm`` per adapted matrix, from a pristine copy of W₀, so nothing drifts), and peft's separate LoRA
    path is switched off. A forward then costs exactly the base model's: the per-token ``(x Aᵀ) Bᵀ`` work is
    replaced by a per-genome ``B·A``, cheaper whenever a batch holds more tokens than about half the hidden
    size. With B = 0 the merged weights are W₀ bit for bit."""

    def __init__(self, peft_model: PeftModel, merged: bool = False) -> None:
        self.model = peft_model
        # stock PEFT keys, e.g. "...query.lora_A.weight"
        saved = get_peft_model_state_dict(peft_model)
        params = dict(peft_model.named_parameters())
        pairs = []
        for key in saved:
            pname = re.sub(r"\.(lora_[AB])\.weight$", r".\1.default.weight", key)
            if pname not in params:
                raise RuntimeError(f"cannot map saved key {key!r} to a parameter")
            pairs.append((key, params[pname]))
        self.layout = GenomeLayout.from_shapes({k: tuple(p.shape) for k, p in pairs})
        device = pairs[0][1].device
        self.buffer = torch.zeros(self.layout.size, dtype=torch.float32, device=device)
        for s, (_, p) in zip(self.layout, pairs):
            view = self.buffer[s.offset : s.offset + s.size].view(s.shape)
            view.copy_(p.data)
            p.data = view  # alias: the module now reads its weight from the flat buffer
        self.adapted_layers = sorted({layer for k in saved if (layer := layer_of(k)) is not None})
        modules = dict(peft_model.named_modules())
        by_key = {s.key: s for s in self.layout}
        self._merge = []  # (base weight, pristine W0, B view, A view, scaling)
        self._pristine = {}  # A key → pristine W0
        for s in self.layout:
            if s.kind == "A":
                mod = modules[s.key[: -len(".lora_A.weight")]]
                b = by_key[s.key.replace(".lora_A.", ".lora_B.")]
                self._pristine[s.key] = mod.base_layer.weight.detach().clone()
                self._merge.append(
                    (
                        mod.base_layer.weight,
                        self._pristine[s.key],
                        self.buffer[b.offset : b.offset + b.size].view(b.shape),
                        self.buffer[s.offset : s.offset + s.size].view(s.shape),
                        float(mod.scaling["default"]),
                    )
                )
        self.merged = False
        if merged:
            self.set_merged(True)

    def pristine_weights(self) -> dict[str, torch.Tensor]:
        """The frozen weight W₀ under each adapted matrix, keyed by its LoRA A slice (never a merged one)."""
        return dict(self._pristine)

    def set_merged(self, on: bool) -> None:
        """Switch between merged weights (peft's LoRA path off) and the stock peft LoRA path on W₀."""
        if on:
            self.model.base_model.disable_adapter_layers()
            self.merged = True
            self._fold()
        else:
            self.restore_base()
            self.model.base_model.enable_adapter_layers()
            self.merged = False

    @torch.no_grad()
    def _fold(self) -> None:
        for weight, w0, b, a, scale in self._merge:
            torch.addmm(w0, b, a, alpha=scale, out=weight)  # W₀ + s·B·A, (out, in)

    @contextlib.contextmanager
    def base_only(self):
        """The frozen base model alone (W₀, LoRA off) inside the context; the adapter state is restored after."""
        if self.merged:
            self.restore_base()
            try:
                yield
            finally:
                self._fold()
        else:
            with self.model.disable_adapter():
                yield

    @torch.no_grad()
    def restore_base(self) -> None:
        """Put the pristine frozen weights back (the next ``write`` folds a genome in again if merged)."""
        for weight, w0, *_ in self._merge:
            weight.copy_(w0)

    def read(self) -> np.ndarray:
        """The genome currently in the model (gen 0: the peft initialisation, B = 0)."""
        return self.buffer.detach().cpu().numpy().astype(np.float32, copy=True)

    def write(self, genome: np.ndarray) -> None:
        self.layout.check(genome)
        self.buffer.copy_(torch.from_numpy(np.ascontiguousarray(genome, dtype=np.float32)))
        if self.merged:
            self._fold()

    def state_dict(self, genome: np.ndarray) -> dict[str, torch.Tensor]:
        """Genome → PEFT adapter state dict (stock keys), independent of the model's buffer."""
        return {k: torch.from_numpy(v) for k, v in self.layout.to_arrays(genome).items()}

    def save_adapter(
        self, genome: np.ndarray, out: str | Path, base_name: str | None = None
    ) -> Path:
        """Write a stock PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
        ``base_name`` replaces the base's local path in ``base_model_name_or_path`` (a hub id, portably)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.model.peft_config["default"]
        if base_name is not None:
            cfg = dataclasses.replace(cfg, base_model_name_or_path=base_name)
        cfg.save_pretrained(str(out))
        weights = out / "adapter_model.safetensors"
        save_file(self.state_dict(genome), str(weights), metadata={"format": "pt"})
        # safetensors writes through a private temp file (0600): as any new file
        weights.chmod(0o666 & ~_umask())
        return out

    def describe(self) -> dict:
        return {
            "genome_size": self.layout.size,
            "lora_matrices": len(self.layout),
            "adapted_layers": self.adapted_layers,
        }
