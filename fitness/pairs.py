"""Sentence-pair similarity data (STS benchmark format) and the fitness terms that score it."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evolora.evolution.errors import ConfigError
from evolora.fitness.plugins import register_fitness
from evolora.fitness.registry import FitnessTerm
from evolora.fitness.tables import ENCODING, Columns, data_path, detect_format, read_table

__all__ = [
    "Pairs",
    "PairOutputs",
    "load_pairs",
    "load_sts",
    "hold_out_sources",
    "PACKAGED_STSB",
    "STSB_RANGE",
    "score_range",
    "read_only",
]

PACKAGED_STSB = Path(__file__).parent / "data" / "stsbenchmark"


@dataclass(frozen=True)
class Pairs:
    """Sentence pairs with gold similarity scores on the scale of ``score_range`` (STS-B: [0, 5]). The gold
    array is read-only: a plug-in that writes into the labels it is handed fails, naming itself, instead of
    corrupting them for every later call."""

    s1: tuple[str, ...]
    s2: tuple[str, ...]
    gold: np.ndarray  # (pairs,) float64, read-only
    source: tuple[
        str, ...
    ] = ()  # each pair's source (STS-B column 2: MSRpar, headlines, …), when known
    # the data's other columns (plug-ins read them)
    columns: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # (lowest, highest) score the labels' scale has; None: not known yet
    score_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gold", read_only(np.asarray(self.gold, dtype=np.float64)))

    def __len__(self) -> int:
        return len(self.s1)

    def take(self, idx: np.ndarray) -> Pairs:
        return Pairs(
            tuple(self.s1[i] for i in idx),
            tuple(self.s2[i] for i in idx),
            self.gold[idx],
            tuple(self.source[i] for i in idx) if self.source else (),
            {k: tuple(v[i] for i in idx) for k, v in self.columns.items()},
            self.score_range,
        )

    def __add__(self, other: Pairs) -> Pairs:
        """Both sets of pairs, ``self``'s first (the source column, and each other column, is kept only when
        both have it)."""
        both = self.source and other.source
        cols = {k: v + other.columns[k] for k, v in self.columns.items() if k in other.columns}
        return Pairs(
            self.s1 + other.s1,
            self.s2 + other.s2,
            np.concatenate([self.gold, other.gold]),
            self.source + other.source if both else (),
            cols,
            self.score_range or other.score_range,
        )

    def with_range(self, score_range: tuple[float, float]) -> Pairs:
        return dataclasses.replace(self, score_range=(float(score_range[0]), float(score_range[1])))


def read_only(a: np.ndarray | None) -> np.ndarray | None:
    """A view of ``a`` that cannot be written through (what evolora hands to a user's code)."""
    if a is None or not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


STSB_RANGE = (0.0, 5.0)  # the STS benchmark's similarity scale


def score_range(
    splits: list[Pairs], given: tuple[float, float] | None, field: str = "data.score_range"
) -> tuple[float, float]:
    """The labels' scale: ``given`` (``data.score_range``; every label of every split must lie within it), the
    STS-B scale for STS-B files, else the lowest and highest label of the splits (train and validation)."""
    if given is not None:
        lo, hi = float(given[0]), float(given[1])
        for p in splits:
            out = p.gold[(p.gold < lo) | (p.gold > hi)]
            if out.size:
                raise ConfigError(
                    field,
                    f"a label lies outside [{lo:g}, {hi:g}] (e.g. {float(out[0]):g})",
                    list(given),
                )
        return lo, hi
    known = {p.score_range for p in splits if p.score_range is not None}
    if len(known) == 1 and all(p.score_range is not None for p in splits):
        return known.pop()
    gold = np.concatenate([p.gold for p in splits])
    lo, hi = float(gold.min()), float(gold.max())
    if not lo < hi:
        raise ConfigError(
            field, f"every label is {lo:g}: the scores have no range (set data.score_range)", None
        )
    return lo, hi


@dataclass(frozen=True)
class PairOutputs:
    """What a pair task produces for one genome: cosine per pair and the gold scores (and, for plug-ins, the
    pairs themselves and both sentences' embeddings)."""

    cos: np.ndarray  # (pairs,)
    gold: np.ndarray  # (pairs,)
    pairs: Pairs | None = None  # texts, sources and other columns of these pairs
    # (pairs, hidden) L2-normalised embedding of each pair's first sentence
    emb1: np.ndarray | None = None
    emb2: np.ndarray | None = None
    score_range: tuple[float, float] | None = None  # the labels' scale (default: the pairs')

    def __post_init__(
        self,
    ) -> None:  # every array read-only: terms (a user's among them) read, never write
        for name in ("cos", "gold", "emb1", "emb2"):
            object.__setattr__(self, name, read_only(getattr(self, name)))
        if self.score_range is None and self.pairs is not None:
            object.__setattr__(self, "score_range", self.pairs.score_range)

    def take(self, idx: np.ndarray) -> PairOutputs:
        """The outputs of the pairs at ``idx`` (indices or a boolean mask)."""
        idx = np.flatnonzero(idx) if np.asarray(idx).dtype == bool else np.asarray(idx)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return PairOutputs(
            self.cos[idx],
            self.gold[idx],
            None if self.pairs is None else self.pairs.take(idx),
            pick(self.emb1),
            pick(self.emb2),
            self.score_range,
        )


def load_pairs(
    path: str | Path, field: str, fmt: str = "auto", columns: Columns = Columns()
) -> Pairs:
    """Sentence pairs from an STS-B file or any table :func:`evolora.fitness.data.read_table` reads, with the columns
    ``columns`` maps (defaults ``sentence1``, ``sentence2``, ``score``, and ``source`` if there is one); every
    other column is kept for plug-ins."""
    p = data_path(path, field)
    if (detect_format(p) if fmt == "auto" else fmt) == "stsb":
        return load_sts(p, field)
    t = read_table(p, field, fmt)
    roles = {r: columns.name(r, t.header) or r for r in ("sentence1", "sentence2", "score")}
    for role, col in roles.items():
        t.require(col, role)
    src = columns.name("source", t.header)
    if src is not None:
        t.require(src, "source")
    n = len(t.rows)
    s1 = tuple(t.text(i, roles["sentence1"]) for i in range(n))
    s2 = tuple(t.text(i, roles["sentence2"]) for i in range(n))
    gold = np.array([t.number(i, roles["score"]) for i in range(n)], dtype=np.float64)
    source = tuple(str(r.get(src)) for r in t.rows) if src is not None else ()
    used = {*roles.values(), src}
    extra = {k: tuple(r.get(k) for r in t.rows) for k in t.header if k not in used}
    return Pairs(s1, s2, gold, source, extra)


def load_sts(path: str | Path, field: str) -> Pairs:
    """Read an STS benchmark file: tab-separated, source in column 2, score in column 5, sentences in columns
    6 and 7."""
    p = data_path(path, field)
    if not p.is_file():
        raise ConfigError(field, "is a directory, not an STS-B file", str(path))
    s1, s2, gold, source = [], [], [], []
    try:
        with p.open(encoding=ENCODING) as fh:
            for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                if len(row) < 7:
                    raise ConfigError(
                        field,
                        f"{p}: line {lineno}: expected ≥7 tab-separated columns (STS-B), got "
                        f"{len(row)}",
                        row[:7],
                    )
                try:
                    score = float(row[4])
                except ValueError:
                    raise ConfigError(
                        field, f"{p}: line {lineno}: score (column 5) is not a number", row[4]
                    ) from None
                if not 0.0 <= score <= 5.0:  # STS-B's scale (a NaN fails this too)
                    raise ConfigError(
                        field,
                        f"{p}: line {lineno}: score (column 5) is outside STS-B's range [0, 5]",
                        row[4],
                    )
                gold.append(score)
                source.append(row[1])
                s1.append(row[5])
                s2.append(row[6])
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"{p}: not UTF-8 text (byte {e.start})", str(path)) from None
    except csv.Error as e:
        raise ConfigError(field, f"{p}: malformed STS-B file ({e})", str(path)) from None
    if not gold:
        raise ConfigError(field, "data file is empty", str(path))
    return Pairs(
        tuple(s1),
        tuple(s2),
        np.asarray(gold, dtype=np.float64),
        tuple(source),
        score_range=STSB_RANGE,
    )


def hold_out_sources(pairs: Pairs, sources, field: str = "data.val_sources") -> tuple[Pairs, Pairs]:
    """(rest, held out): every pair whose source is one of ``sources`` is held out, and with it every pair
    identical in content to one of those (so no held-out pair is also a pair of the rest). Order is kept.
    A source the data does not hold, data without a source column, or nothing left is a ConfigError naming
    ``field``."""
    wanted = list(dict.fromkeys(sources))
    if not isinstance(pairs, Pairs) or not pairs.source:
        raise ConfigError(
            field, "needs sentence pairs with a source column (STS-B format, column 2)", wanted
        )
    known = sorted(set(pairs.source))
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ConfigError(
            field, f"no such source in the train data (has: {', '.join(known)})", unknown
        )
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
    correlation = True

    def __call__(self, outputs: PairOutputs) -> float:
        # here, not at import: study files validate without loading scipy
        from scipy.stats import (
            spearmanr,
        )

        return float(spearmanr(outputs.cos, outputs.gold).statistic)


@register_fitness("stsb_pearson")
class PearsonTerm(FitnessTerm):
    """Pearson correlation between pair cosine and gold score, in [-1, 1]: a smooth stand-in for Spearman
    (it moves with every small change of a cosine, where ranks move in steps) that, like Spearman, ignores
    the scale and offset of the cosines."""

    task = "pairs"
    correlation = True

    def __call__(self, outputs: PairOutputs) -> float:
        c = outputs.cos - outputs.cos.mean()
        g = outputs.gold - outputs.gold.mean()
        denom = float(np.sqrt((c * c).sum() * (g * g).sum()))
        return float((c * g).sum() / denom) if denom > 0 else 0.0


@register_fitness("stsb_neg_mse")
class NegMSETerm(FitnessTerm):
    """Minus the mean squared error between pair cosine and gold score rescaled to [0, 1] by the labels' own
    range (``data.score_range``; STS-B files: [0, 5]; otherwise the lowest and highest label of train and
    validation)."""

    task = "pairs"

    def __call__(self, outputs: PairOutputs) -> float:
        if outputs.score_range is None:
            raise ValueError("stsb_neg_mse needs the labels' range (PairOutputs.score_range)")
        lo, hi = outputs.score_range
        return -float(np.mean((outputs.cos - (outputs.gold - lo) / (hi - lo)) ** 2))
