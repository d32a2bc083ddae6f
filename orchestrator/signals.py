"""SIGTERM, handled in one place as Ctrl-C is: schedulers, ``docker stop`` and ``timeout`` send it, and a run
must then end KILLED with its metrics flushed (a sweep's trial failed, its checkpoint kept for the resume),
never stay RUNNING."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable

__all__ = ["Terminated", "handle_sigterm", "deferred_signals"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM; every ``except KeyboardInterrupt`` path handles it."""


def _raise(signum, frame) -> None:
    raise Terminated(f"terminated by signal {signum}")


def handle_sigterm() -> Callable[[], None]:
    """SIGTERM → :class:`Terminated` in this process's main thread. Returns what restores the previous
    handler (a no-op off the main thread, where signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = signal.signal(signal.SIGTERM, _raise)
    return lambda: signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def deferred_signals():
    """SIGINT and SIGTERM held back while the block runs (a run writing its final status, a Ray driver
    shutting down), then raised as they would have been (:class:`KeyboardInterrupt`, :class:`Terminated`), so
    a second signal cannot cut that work short. Python runs signal handlers in the main thread whichever thread
    the kernel picks, so the handlers are swapped rather than the threads' signal masks; off the main thread, a
    no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if pending:
            if signal.SIGTERM in pending:
                raise Terminated(f"terminated by signal {signal.SIGTERM}")
            raise KeyboardInterrupt
