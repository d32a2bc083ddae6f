"""One retry-with-backoff for the services a sweep leans on — the MLflow tracking server
(:mod:`.client`) and the Optuna storage database (:mod:`evolora.orchestrator.sweep.storage`): call, and on
a transient failure wait and call again, the wait doubling up to a cap, until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["call_with_retry", "backoff"]


def backoff(attempt: int, first: float, cap: float) -> float:
    """The wait before retry ``attempt`` (1, 2, …): ``first``, doubling, at most ``cap``."""
    return min(first * 2.0 ** (attempt - 1), cap)


def call_with_retry(
    fn: Callable[[], Any],
    *,
    transient: Callable[[BaseException], bool],
    patience: float,
    first: float,
    cap: float,
    settled: Callable[[], tuple[bool, Any]] | None = None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    on_recovered: Callable[[], None] | None = None,
    give_up: Callable[[BaseException], BaseException | None] | None = None,
) -> Any:
    """``fn()`` until it returns or fails with an error that is not ``transient``; between attempts wait
    :func:`backoff` seconds while ``patience`` allows, then raise ``give_up(error)`` (or the error itself).
    ``settled()``, before each retry: whether the failed attempt took effect after all (its answer lost) →
    ``(True, its result)``. ``on_retry(error, attempt, wait)`` before each wait; ``on_recovered()`` once a
    call goes through after a failure."""
    deadline, attempt = time.monotonic() + patience, 0
    while True:
        try:
            if attempt and settled is not None:
                done, result = settled()
                if done:
                    return result
            result = fn()
            if attempt and on_recovered is not None:
                on_recovered()
            return result
        except Exception as e:
            wait = backoff(attempt + 1, first, cap)
            if not transient(e):
                raise
            if time.monotonic() + wait > deadline:
                final = give_up(e) if give_up is not None else None
                if final is None:
                    raise
                raise final from e
            attempt += 1
            if on_retry is not None:
                on_retry(e, attempt, wait)
            time.sleep(wait)
