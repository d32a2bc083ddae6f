"""SIGTERM, handled in one place as Ctrl-C is: schedulers, ``docker stop`` and ``timeout`` send it, and a run
must then end KILLED with its metrics flushed (a sweep's trial failed, its checkpoint kept for the resume),
never stay RUNNING."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable

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
    """SIGINT and SIGTERM held back (delivered when the block ends) in the main thread, so that a second
    signal cannot cut a run's final status short; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
