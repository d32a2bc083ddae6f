"""Sentence-pair similarity data (STS benchmark format) and the fitness terms that score it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evolution.errors import ConfigError

from .registry import FitnessTerm, register_fitness

__all__ = ["Pairs", "PairOutputs", "load_sts", "hold_out_sources", "PACKAGED_STSB"]

PACKAGED_STSB = Path(__file__).parent / "data" / "stsbenchmark"


@dataclass(frozen=True)
class Pairs:
    """Sentence pairs with gold similarity scores in [0, 5]."""

    s1: tuple[str, ...]
    s2: tuple[str, ...]
    gold: np.ndarray  # (pairs,) float64
    source: tuple[str, ...] = ()  # each pair's source (STS-B column 2: MSRpar, headlines, …), when known

    def __len__(self) -> int:
        return len(self.s1)

    def take(self, idx: np.ndarray) -> "Pairs":
        return Pairs(tuple(self.s1[i] for i in idx), tuple(self.s2[i] for i in idx), self.gold[idx],
                     tuple(self.source[i] for i in idx) if self.source else ())

    def __add__(self, other: "Pairs") -> "Pairs":
        """Both sets of pairs, ``self``'s first (the source column is kept only when both have one)."""
        both = self.source and other.source
        return Pairs(self.s1 + other.s1, self.s2 + other.s2, np.concatenate([self.gold, other.gold]),
                     self.source + other.source if both else ())


@dataclass(frozen=True)
class PairOutputs:
    """What a pair task produces for one genome: cosine per pair and the gold scores."""

    cos: np.ndarray  # (pairs,)
    gold: np.ndarray  # (pairs,)


def load_sts(path: str | Path, field: str) -> Pairs:
    """Read an STS benchmark file: tab-separated, source in column 2, score in column 5, sentences in columns
    6 and 7."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, "data file not found", str(path))
    s1, s2, gold, source = [], [], [], []
    with p.open(encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) < 7:
                raise ConfigError(field, f"line {lineno}: expected ≥7 tab-separated columns, got {len(row)}", str(path))
            try:
                score = float(row[4])
            except ValueError:
                raise ConfigError(field, f"line {lineno}: score is not a number", row[4]) from None
            gold.append(score)
            source.append(row[1])
            s1.append(row[5])
            s2.append(row[6])
    if not gold:
        raise ConfigError(field, "data file is empty", str(path))
    return Pairs(tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64), tuple(source))


def hold_out_sources(pairs: Pairs, sources, field: str = "data.val_sources") -> tuple[Pairs, Pairs]:
    """(rest, held out): every pair whose source is one of ``sources`` is held out, and with it every pair
    identical in content to one of those (so no held-out pair is also a pair of the rest). Order is kept.
    A source the data does not hold, data without a source column, or nothing left is a ConfigError naming
    ``field``."""
    wanted = list(dict.fromkeys(sources))
    if not isinstance(pairs, Pairs) or not pairs.source:
        raise ConfigError(field, "needs sentence pairs with a source column (STS-B format, column 2)", wanted)
    known = sorted(set(pairs.source))
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ConfigError(field, f"no such source in the train data (has: {', '.join(known)})", unknown)
    keys = list(zip(pairs.s1, pairs.s2))
    held_keys = {k for k, src in zip(keys, pairs.source) if src in wanted}
    held = np.array([i for i, k in enumerate(keys) if k in held_keys], dtype=np.int64)
    rest = np.array([i for i, k in enumerate(keys) if k not in held_keys], dtype=np.int64)
    if rest.size == 0:
        raise ConfigError(field, "holds out every train pair: nothing is left for fitness", wanted)
    return pairs.take(rest), pairs.take(held)


@register_fitness("stsb_spearman")
class SpearmanTerm(FitnessTerm):
    """Spearman rank correlation between pair cosine and gold score (the STS-B metric), in [-1, 1]."""

    task = "pairs"

    def __call__(self, outputs: PairOutputs) -> float:
        from scipy.stats import spearmanr  # here, not at import: study files validate without loading scipy

        return float(spearmanr(outputs.cos, outputs.gold).statistic)


@register_fitness("stsb_pearson")
class PearsonTerm(FitnessTerm):
    """Pearson correlation between pair cosine and gold score, in [-1, 1]: a smooth stand-in for Spearman
    (it moves with every small change of a cosine, where ranks move in steps) that, like Spearman, ignores
    the scale and offset of the cosines."""

    task = "pairs"

    def __call__(self, outputs: PairOutputs) -> float:
        c = outputs.cos - outputs.cos.mean()
        g = outputs.gold - outputs.gold.mean()
        denom = float(np.sqrt((c * c).sum() * (g * g).sum()))
        return float((c * g).sum() / denom) if denom > 0 else 0.0


@register_fitness("stsb_neg_mse")
class NegMSETerm(FitnessTerm):
    """Minus the mean squared error between pair cosine and gold score rescaled to [0, 1]."""

    task = "pairs"

    def __call__(self, outputs: PairOutputs) -> float:
        return -float(np.mean((outputs.cos - outputs.gold / 5.0) ** 2))
