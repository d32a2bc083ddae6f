"""The splits a task reads: validation from its own file, or drawn from train by content (duplicates on one
side) — with ``val_sources``, whole sources held out beside the draw — and the test split, scored once."""

from __future__ import annotations

import numpy as np

from evolora.evolution.errors import ConfigError
from evolora.fitness.pairs import Pairs, hold_out_sources
from evolora.fitness.spec import TaskSpec

__all__ = ["split_validation", "load_splits", "take"]

_VAL_STREAM = 0x7A1  # the validation split's own random stream under the data seed


def split_validation(items, fraction: float, seed: int, field: str = "data.val_fraction"):
    """(train, validation): ``fraction`` of the distinct examples of ``items``, drawn by a generator seeded
    from (``seed``, a fixed stream id). Identical examples (duplicate pairs) go to the same side, so no
    validation example is also a training example. Deterministic: same data and seed, same split."""
    keys = [_content_key(items, i) for i in range(len(items))]
    distinct = list(dict.fromkeys(keys))
    n_val = int(round(fraction * len(distinct)))
    if n_val < 1 or n_val >= len(distinct):
        raise ConfigError(
            field, f"leaves an empty split of {len(distinct)} distinct examples", fraction
        )
    rng = np.random.Generator(np.random.PCG64([seed, _VAL_STREAM]))
    val_keys = {distinct[int(i)] for i in rng.permutation(len(distinct))[:n_val]}
    val_idx = np.array([i for i, k in enumerate(keys) if k in val_keys])
    train_idx = np.array([i for i, k in enumerate(keys) if k not in val_keys])
    return take(items, train_idx), take(items, val_idx)


def _content_key(items, i: int):
    if isinstance(items, Pairs):
        return (items.s1[i], items.s2[i])
    return items[i]


def load_splits(spec: TaskSpec, load, **genres):
    """(train, validation) examples: validation from ``dev_path``, or drawn from train by ``val_fraction``
    (plus, with ``val_sources``, every train pair of those sources, held out before the draw)."""
    train = load(spec.data.train_path, "data.train_path", *genres.get("train", ()))
    if spec.data.val_fraction is not None:
        if not spec.data.val_sources:
            return split_validation(train, spec.data.val_fraction, spec.data.seed)
        rest, held = hold_out_sources(train, spec.data.val_sources)
        train, val = split_validation(rest, spec.data.val_fraction, spec.data.seed)
        return train, val + held
    if not spec.data.dev_path:
        raise ConfigError(
            "data.dev_path",
            "no validation data: give data.dev_path or data.val_fraction",
            spec.data.dev_path,
        )
    return train, load(spec.data.dev_path, "data.dev_path", *genres.get("dev", ()))


def take(items, idx: np.ndarray):
    """The examples of ``items`` at ``idx`` (pairs, or a list of texts)."""
    return items.take(idx) if hasattr(items, "take") else [items[int(i)] for i in idx]
