"""The messages of population evaluation on Ray, declared once. On the wire each is a dict packed as evolora's
data-only encoding (:func:`evolora.evolution.checkpoint.pack`: arrays, numbers, strings, lists, dicts; never a
pickle), so they are typed here as :class:`~typing.TypedDict`; ``tests/orchestrator/test_messages.py`` checks
every message the modules of this room write against these declarations.

* the trial's process → its driver child, one request per frame (``op``), and the child's replies (``status``);
* the pool → an actor's ``score``: one chunk of one generation (``mode``), and the actor's answer.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import numpy as np

__all__ = [
    "StartRequest",
    "ScoreRequest",
    "WaitRequest",
    "ReplaceRequest",
    "PidsRequest",
    "CloseRequest",
    "Request",
    "StartReply",
    "WaitReply",
    "ReplaceReply",
    "PidsReply",
    "ChunkMessage",
    "ChunkAnswer",
    "REQUESTS",
]


# ---- the trial's process → its driver child ------------------------------------------------------------
class StartRequest(TypedDict):
    """The first frame: the resolved config and how many actors to start, where, with what."""

    op: Literal["start"]
    conf: dict[str, Any]
    actors: int
    threads: int
    address: str | None
    num_gpus: float
    num_cpus: float
    ready_timeout: float


class ScoreRequest(TypedDict):
    """Send ``message`` (a :class:`ChunkMessage`, packed) to actor ``actor``; its answer comes under ``token``."""

    op: Literal["score"]
    actor: int
    token: int
    message: np.ndarray  # uint8 bytes


class WaitRequest(TypedDict):
    op: Literal["wait"]  # the next finished score


class ReplaceRequest(TypedDict):
    op: Literal["replace"]  # a new actor in slot ``actor`` (its predecessor died)
    actor: int


class PidsRequest(TypedDict):
    op: Literal["pids"]


class CloseRequest(TypedDict):
    op: Literal["close"]


Request = StartRequest | ScoreRequest | WaitRequest | ReplaceRequest | PidsRequest | CloseRequest
REQUESTS = {
    "start": StartRequest,
    "score": ScoreRequest,
    "wait": WaitRequest,
    "replace": ReplaceRequest,
    "pids": PidsRequest,
    "close": CloseRequest,
}


# ---- the driver child's replies ---------------------------------------------------------------------------
class StartReply(TypedDict, total=False):
    """``ready`` with the actors' process ids; ``lost`` (the cluster could not place them) or ``config_error``
    (the config names something this cluster cannot run) with why."""

    status: Literal["ready", "lost", "config_error"]
    pids: list[int]
    error: str
    field: str
    message: str
    value: str | None


class WaitReply(TypedDict, total=False):
    """A finished score: ``ok`` with the actor's answer (a :class:`ChunkAnswer`, packed), ``died`` when its
    actor died or became unreachable, ``failed`` when the scoring raised."""

    status: Literal["ok", "died", "failed"]
    token: int
    answer: np.ndarray  # uint8 bytes
    error: str


class ReplaceReply(TypedDict):
    status: Literal["ok"]


class PidsReply(TypedDict):
    pids: list[int]


# ---- the pool → an actor ------------------------------------------------------------------------------------
class ChunkMessage(TypedDict, total=False):
    """Members ``lo``..``hi`` of generation ``gen``: sent as ``genomes``, or rebuilt by the actor's replica of
    the strategy — ``advance`` from the previous generation's ``fitness`` values, ``sync`` from the strategy's
    ``state`` — with the generator state before the draw (``draw``) and the population's size (``count``)."""

    mode: Literal["genomes", "advance", "sync"]
    gen: int
    lo: int
    hi: int
    batches: (
        list[int | None] | None
    )  # each member's fitness batch (None: the generation's shared one)
    genomes: np.ndarray  # genomes: (hi − lo, genes) float32
    draw: dict[str, Any]
    count: int
    fitness: list[float]
    state: dict[str, Any]


class ChunkAnswer(TypedDict):
    """Each member's fitness and term values, and a digest of the genome it scored (checked by the pool)."""

    fitness: list[float]
    terms: list[dict[str, float]]
    digests: list[str]
