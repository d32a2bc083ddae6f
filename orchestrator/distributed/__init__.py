"""A generation's population scored on Ray actors: the pool (the loop's evaluator), the trial's driver
process, the actor, the messages between them, a local cluster."""

from evolora.evolution.lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
