"""The registry of fitness terms: the built-in ones and the user's own, from the user's own code.

Two ways in, and a study file triggers neither (it only *names* a term):

* an installed package declares an entry point in the group ``evolora.fitness`` (its ``pyproject.toml``:
  ``[project.entry-points."evolora.fitness"] my_reward = "my_pkg.rewards:my_reward"``); the name is the term's
  name, and the package is imported the first time a study uses it;
* Python: ``evolora.register_reward("my_reward", fn)`` (or ``register_pair_metric``) in the script that then
  runs or sweeps a study. Sweep workers are new processes: register at module level, as ``multiprocessing``
  asks of what a child process needs.

The conventions are the ecosystem's, so existing code drops in:

* **causal models** — TRL's reward functions: ``fn(prompts, completions, **kwargs) -> list[float | None]``,
  one value per completion, ``None`` for "no opinion". ``kwargs`` holds ``completion_ids`` (each greedy
  completion re-tokenised), ``trainer_state`` (None: there is no trainer), the data's ``target`` and ``answer``
  columns where the data has them, every other column of the data under its own name, and the term's
  ``params``. The genome's value is the mean of the values given. With ``batched=False``:
  ``fn(prompt, completion, **columns) -> float | None`` per example.
* **encoders** — ``fn(cosines, score, sentence1, sentence2, embeddings1, embeddings2, **columns) -> float``
  on the batch of pairs (``cosines``: the genome's cosine per pair; ``score``: the gold labels;
  ``embeddings1/2``: (pairs, hidden) L2-normalised sentence embeddings). With ``batched=False``:
  ``fn(cosine, score, sentence1, sentence2, embedding1, embedding2, **columns) -> float`` per pair, averaged.

A value that is not a finite number, a list of the wrong length, or an exception stops the trial with a
:class:`FitnessTermError` naming the term and what it returned.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from evolora.evolution.errors import EvoloraError, RegistryError
from evolora.fitness.registry import FitnessTerm, Registry

__all__ = [
    "FITNESS_TERMS",
    "ENTRY_POINT_GROUP",
    "FitnessTermError",
    "register_fitness",
    "register_reward",
    "register_pair_metric",
    "reward",
    "pair_metric",
    "term_class",
    "describe_terms",
]

ENTRY_POINT_GROUP = "evolora.fitness"
_MARK = "__evolora_term__"  # set by @reward / @pair_metric: (task, batched)

# the arguments evolora fills itself, by task and mode (a term's params may not take these names)
DATA_ARGS = {
    ("causal", True): (
        "prompts",
        "completions",
        "completion_ids",
        "trainer_state",
        "target",
        "answer",
    ),
    ("causal", False): ("prompt", "completion", "completion_ids", "target", "answer"),
    ("pairs", True): (
        "cosines",
        "score",
        "sentence1",
        "sentence2",
        "embeddings1",
        "embeddings2",
        "source",
    ),
    ("pairs", False): (
        "cosine",
        "score",
        "sentence1",
        "sentence2",
        "embedding1",
        "embedding2",
        "source",
    ),
}


class FitnessTermError(EvoloraError):
    """A fitness term from the user's code raised, or returned something that is not a usable score."""


def _origin_of(fn: Callable) -> str:
    return f"python {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _adapt(name: str, obj: Any, origin: str) -> type[FitnessTerm]:
    return term_class(name, obj, origin)


FITNESS_TERMS: Registry[type[FitnessTerm]] = Registry("fitness term", ENTRY_POINT_GROUP, _adapt)


def register_fitness(name: str):
    """Class decorator for a :class:`FitnessTerm` subclass: ``@register_fitness("stsb_spearman")``."""
    return FITNESS_TERMS.register(name)


def _mark(task: str, fn: Callable | None, batched: bool):
    def deco(f: Callable) -> Callable:
        if not callable(f):
            raise RegistryError(f"a {task} fitness term must be callable, got {f!r}")
        setattr(f, _MARK, (task, batched))
        return f

    return deco(fn) if fn is not None else deco


def reward(fn: Callable | None = None, *, batched: bool = True):
    """Marks a function as a causal-model reward (TRL's convention), e.g. for an entry point:
    ``@reward`` or ``@reward(batched=False)``. An unmarked function is read by the arguments it names
    (:func:`_infer`)."""
    return _mark("causal", fn, batched)


def pair_metric(fn: Callable | None = None, *, batched: bool = True):
    """Marks a function as an encoder pair metric (``@pair_metric`` or ``@pair_metric(batched=False)``)."""
    return _mark("pairs", fn, batched)


def register_reward(name: str, fn: Callable, *, batched: bool = True) -> type[FitnessTerm]:
    """Register ``fn`` as the causal fitness term ``name`` (TRL's reward-function convention)."""
    cls = term_class(name, reward(fn, batched=batched), _origin_of(fn))
    FITNESS_TERMS.add(name, cls, cls.origin)
    return cls


def register_pair_metric(name: str, fn: Callable, *, batched: bool = True) -> type[FitnessTerm]:
    """Register ``fn`` as the encoder (sentence-pair) fitness term ``name``."""
    cls = term_class(name, pair_metric(fn, batched=batched), _origin_of(fn))
    FITNESS_TERMS.add(name, cls, cls.origin)
    return cls


def _explicit_params(fn: Callable) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _infer(fn: Callable) -> tuple[str, bool]:
    """(task, batched) of an unmarked function, from the data arguments it names: a pair metric names
    ``cosines``/``embeddings1`` (per pair: ``cosine``/``embedding1``), a per-example reward ``completion``; any
    other function is a batched reward in TRL's convention (``completions``, ``**kwargs``)."""
    names = {p.name for p in _explicit_params(fn)}
    if names & {"cosines", "embeddings1", "embeddings2"}:
        return "pairs", True
    if names & {"cosine", "embedding1", "embedding2"}:
        return "pairs", False
    if "completion" in names and "completions" not in names:
        return "causal", False
    return "causal", True


def term_class(name: str, obj: Any, origin: str) -> type[FitnessTerm]:
    """A :class:`FitnessTerm` subclass for a plug-in: a subclass given as such, or a function wrapped by its
    mark (``@reward`` / ``@pair_metric``) or, unmarked, by the data arguments it names (:func:`_infer`)."""
    if isinstance(obj, type) and issubclass(obj, FitnessTerm):
        if obj.task not in ("pairs", "causal"):
            raise RegistryError(
                f"fitness term {name!r} ({origin}): its class must set task = 'pairs' or 'causal', "
                f"got {obj.task!r}"
            )
        return obj
    if not callable(obj):
        raise RegistryError(
            f"fitness term {name!r} ({origin}) is neither a function nor a FitnessTerm class: {obj!r}"
        )
    task, batched = getattr(obj, _MARK, None) or _infer(obj)
    reserved = DATA_ARGS[(task, batched)]
    takes = tuple(p.name for p in _explicit_params(obj) if p.name not in reserved)
    base = _CausalPlugin if task == "causal" else _PairPlugin
    doc = inspect.getdoc(obj) or f"{task} fitness term from {origin}"
    return type(
        f"Plugin_{name}",
        (base,),
        {
            "fn": staticmethod(obj),
            "batched": batched,
            "term_name": name,
            "origin": origin,
            "takes": takes,
            "__doc__": doc,
        },
    )


class _Plugin(FitnessTerm):
    """A user's function as a fitness term: its ``params`` are keyword arguments it names."""

    fn: Callable
    batched: bool = True
    term_name = ""
    origin = ""
    takes: tuple[str, ...] = ()  # keyword arguments a study's params may set (or data columns fill)

    def __init__(self, **params) -> None:
        unknown = sorted(set(params) - set(self.takes))
        if unknown:
            raise ValueError(
                f"{self.term_name} takes no parameter {', '.join(map(repr, unknown))} "
                f"(its own keyword arguments: {', '.join(self.takes) or 'none'})"
            )
        self.params = params

    def _call(self, **kwargs):
        try:
            return self.fn(**kwargs, **self.params)
        except Exception as e:
            raise FitnessTermError(
                f"fitness term {self.term_name!r} ({self.origin}) raised {type(e).__name__}: {e}"
            ) from e

    def _number(self, value, what: str, allow_none: bool = False) -> float | None:
        if value is None and allow_none:
            return None
        if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalars
            value = value.item()
        if not isinstance(value, numbers.Real):
            raise FitnessTermError(
                f"fitness term {self.term_name!r} returned {_show(value)} {what}: not a number"
            )
        if not math.isfinite(float(value)):
            raise FitnessTermError(
                f"fitness term {self.term_name!r} returned {float(value)} {what}: not finite"
            )
        return float(value)

    def _values(self, got, n: int, what: str) -> list[float | None]:
        if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__len__"):
            raise FitnessTermError(
                f"fitness term {self.term_name!r} returned {_show(got)}: expected one value per "
                f"{what} ({n})"
            )
        got = list(got.tolist() if isinstance(got, np.ndarray) else got)
        if len(got) != n:
            raise FitnessTermError(
                f"fitness term {self.term_name!r} returned {len(got)} values for {n} {what}s"
            )
        return [self._number(v, f"for {what} {i}", allow_none=True) for i, v in enumerate(got)]

    def _mean(self, values: list[float | None], what: str) -> float:
        given = [v for v in values if v is not None]
        if not given:
            raise FitnessTermError(
                f"fitness term {self.term_name!r} gave no value (only None) for any of the "
                f"{len(values)} {what}s"
            )
        return float(np.mean(given))


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _columns(rows: list[dict]) -> dict[str, list]:
    """Per-row column dicts → column lists (every key that any row has; missing → None)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [r.get(k) for r in rows] for k in keys}


class _CausalPlugin(_Plugin):
    task = "causal"

    def __call__(self, out) -> float:
        examples, completions = out.generated_examples, out.generations
        cols = _columns([ex.columns() for ex in examples])
        ids = out.completion_ids
        if self.batched:
            got = self._call(
                prompts=[ex.prompt for ex in examples],
                completions=list(completions),
                completion_ids=ids,
                trainer_state=None,
                **cols,
            )
            return self._mean(self._values(got, len(completions), "completion"), "completion")
        values = []
        for i, (ex, c) in enumerate(zip(examples, completions)):
            v = self._call(prompt=ex.prompt, completion=c, completion_ids=ids[i], **ex.columns())
            values.append(self._number(v, f"for completion {i}", allow_none=True))
        return self._mean(values, "completion")


class _PairPlugin(_Plugin):
    task = "pairs"

    def __call__(self, out) -> float:
        pairs = out.pairs
        if pairs is None:
            raise FitnessTermError(
                f"fitness term {self.term_name!r} needs the pairs' texts (none were kept)"
            )
        cols = {
            "sentence1": list(pairs.s1),
            "sentence2": list(pairs.s2),
            **({"source": list(pairs.source)} if pairs.source else {}),
            **{k: list(v) for k, v in pairs.columns.items()},
        }
        if self.batched:
            got = self._call(
                cosines=out.cos, score=out.gold, embeddings1=out.emb1, embeddings2=out.emb2, **cols
            )
            return self._number(got, "for the batch")
        values = []
        for i in range(len(out.cos)):
            row = {k: v[i] for k, v in cols.items()}
            v = self._call(
                cosine=float(out.cos[i]),
                score=float(out.gold[i]),
                embedding1=None if out.emb1 is None else out.emb1[i],
                embedding2=None if out.emb2 is None else out.emb2[i],
                **row,
            )
            values.append(self._number(v, f"for pair {i}"))
        return float(np.mean(values))


def describe_terms() -> list[dict]:
    """Every registered term (loading each entry point): name, task, origin, params (name=default, or
    ``column`` for one the data must supply), first line of its doc; a term that fails to load says why."""
    rows = []
    for name in FITNESS_TERMS.names():
        try:
            cls = FITNESS_TERMS.get(name)
        except RegistryError as e:
            rows.append(
                {"name": name, "task": "?", "origin": "entry point", "params": "", "doc": str(e)}
            )
            continue
        if issubclass(cls, _Plugin):
            params = _explicit_params(cls.fn)
            reserved = DATA_ARGS[(cls.task, cls.batched)]
            shown = [
                f"{p.name}={p.default!r}" if p.default is not p.empty else f"{p.name} (column)"
                for p in params
                if p.name not in reserved
            ]
            kind = f"{cls.task}, {'batch' if cls.batched else 'per example'}"
        else:
            params = _explicit_params(cls.__init__)[1:]
            shown = [
                f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params
            ]
            kind = cls.task
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        rows.append(
            {
                "name": name,
                "task": kind,
                "origin": FITNESS_TERMS.origin(name),
                "params": ", ".join(shown),
                "doc": doc,
            }
        )
    return rows
