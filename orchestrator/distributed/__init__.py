"""A generation's population scored on Ray actors: the pool (the loop's evaluator), the trial's driver
process, the actor, the messages between them, a local cluster.

Its public names are importable from here (``from evolora.orchestrator.distributed import …``); each module loads on
first use of one of its names, so importing the room costs nothing until then."""

from importlib import import_module

_LAZY = {
    "ChunkAnswer": "messages",
    "ChunkMessage": "messages",
    "CloseRequest": "messages",
    "LocalCluster": "cluster",
    "PidsReply": "messages",
    "PidsRequest": "messages",
    "REQUESTS": "messages",
    "RayDriver": "driver",
    "RayPool": "pool",
    "ReplaceReply": "messages",
    "ReplaceRequest": "messages",
    "Request": "messages",
    "ScoreRequest": "messages",
    "Scorer": "actor",
    "StartReply": "messages",
    "StartRequest": "messages",
    "WaitReply": "messages",
    "WaitRequest": "messages",
    "check_ray": "driver",
    "check_terms_reach_actors": "pool",
    "listening": "cluster",
    "start_ray": "driver",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
