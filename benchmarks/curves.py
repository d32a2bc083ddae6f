"""A quality row's clock and its test curve: the wall-clock budget (model loading excluded) and the test score
sampled densely early, then evenly, through the row's time."""

from __future__ import annotations

import contextlib
import time

__all__ = ["Clock", "Curve", "SAMPLES", "FIRST", "MARKS", "at_budgets", "mark_budgets"]


SAMPLES = 6  # evenly spaced test samples per row (plus one at the start and one at the end) …


MARKS: list[
    float
] = []  # the row's shorter budgets in seconds (:func:`mark_budgets`), sampled by every curve

FIRST = 15.0  # … and before them, samples at 15 s, 30 s, 60 s, … while that is denser (a fast row is seen early)


class Clock:
    """Elapsed seconds of a row, not counting the time spent scoring the test split."""

    def __init__(self, budget_s: float) -> None:
        self.budget = budget_s
        self.t0, self.paused = time.perf_counter(), 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def over(self) -> bool:
        return self.elapsed() >= self.budget

    @contextlib.contextmanager
    def pause(self):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - t


class Curve:
    """(elapsed seconds, test score) samples: at 0, then at 15 s, 30 s, 60 s, … (doubling) for as long as that
    is denser than the budget's even spacing (budget / SAMPLES), then evenly spaced, and at the end. So the time
    to a threshold is resolved to within a factor of two early on whatever the budget: with even spacing alone, a
    row that is done in 4 of its 33 minutes was sampled only at its start and end.

    ``marks`` (seconds) are sampled too, at the first chance after each (a row samples between generations): the
    answer a run with that budget would have given, as such a run stops at the first generation end past its
    budget — so one long run reports every shorter budget (:func:`at_budgets`)."""

    def __init__(self, clock: Clock, score, marks=None) -> None:
        self.clock, self.score = clock, score  # score(answer) -> test value
        # seconds at which a sample is due whatever the schedule: the shorter budgets read off a long run
        self.marks = sorted(float(m) for m in (MARKS if marks is None else marks))
        self.points: list[tuple[float, float]] = []
        self._next = 0.0
        self._last_key, self._last_value = None, None

    def maybe(self, key, answer_fn, force: bool = False) -> None:
        """Sample if the next point of the schedule is due; ``key`` identifies the answer (re-scored only
        when it changed)."""
        now = self.clock.elapsed()
        if not force and now < self._next:
            return
        if force and self.points and key == self._last_key and now - self.points[-1][0] < 1.0:
            return  # this answer was sampled a moment ago: that is the last point
        with self.clock.pause():
            if key is None or key != self._last_key:
                self._last_value, self._last_key = float(self.score(answer_fn())), key
            self.points.append((round(now, 2), self._last_value))
        self._next = now + min(self.clock.budget / SAMPLES, max(FIRST, now))
        self._next = min([self._next, *(m for m in self.marks if m > now)])


def mark_budgets(minutes) -> None:
    """Make every curve of this process (one row) sample at each budget (minutes)."""
    MARKS[:] = [60.0 * m for m in minutes]


def at_budgets(curve, minutes) -> dict:
    """The test score a run of each budget (minutes) would have answered, read off a longer run's curve: the
    first sample at or after the budget (the last sample if the run was shorter), with when it was taken."""
    out = {}
    for m in minutes:
        t, v = next(((t, v) for t, v in curve if t >= m * 60 - 1e-9), curve[-1])
        out[f"{m:g}"] = {"seconds": t, "test": v, "gain": v - curve[0][1]}
    return out
