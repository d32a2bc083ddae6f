"""What a user sees while a run goes: a progress bar over generations (tqdm, the best fitness and the last
validation score), third-party libraries' chatter quieted, and the lines a finished run prints."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

from evolora.evolution.observers import Observer

__all__ = ["ProgressBar", "quiet_libraries", "drain_warnings", "guard_text", "source_gains_text"]


class ProgressBar(Observer):
    def __init__(self, total: int, desc: str = "evolving", disable: bool = False) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="gen", disable=disable, dynamic_ncols=True)
        self.last_val = float("nan")

    def on_start(self, info: dict) -> None:
        self.bar.n = info["gen"] + 1
        self.bar.refresh()

    def on_generation(self, row: dict) -> None:
        if "val" in row:
            self.last_val = row["val"]
        self.bar.set_postfix(
            best=f"{row['fit_best']:.4f}",
            val=f"{self.last_val:.4f}",
            evals_s=f"{row['evals_per_s']:.1f}",
        )
        self.bar.update(1)

    def on_end(self, result) -> None:
        self.bar.close()


_CAUGHT: list[str] = []  # third-party warnings kept off the terminal, until a run logs them


def quiet_libraries() -> None:
    """Quiet third-party chatter without importing the libraries (a bad study file is reported before
    torch, transformers or mlflow load): no download bars, MLflow's INFO lines off, and the libraries'
    warnings kept off the terminal — a run logs them as its ``warnings.txt`` — while evolora's own
    (:class:`~evolora.evolution.errors.EvoloraWarning`) still show."""
    import logging
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow loads
    # already loaded (main() called in-process): switch them off now
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    if getattr(warnings.showwarning, "__name__", "") != "_kept_off_terminal":
        warnings.showwarning = _kept_off_terminal(warnings.showwarning)


def _kept_off_terminal(show):
    from evolora.evolution.errors import EvoloraWarning

    def _kept_off_terminal(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, EvoloraWarning):
            return show(message, category, filename, lineno, file, line)
        import warnings

        _CAUGHT.append(warnings.formatwarning(message, category, filename, lineno, line))

    return _kept_off_terminal


def drain_warnings() -> str:
    """The third-party warnings kept off the terminal since the last call (a run logs them)."""
    text = "".join(_CAUGHT)
    _CAUGHT.clear()
    return text


def guard_text(g) -> str:
    bounds = ([f"at most {g.max_drop:g} below the base"] if g.max_drop is not None else []) + (
        [f"at least {g.min:g}"] if g.min is not None else []
    )
    return f"{g.metric} {' and '.join(bounds)}"


def source_gains_text(by_source: dict) -> str:
    """``captions +1.23 pts (500 pairs), …``; a source the metric is undefined on reads ``n/a``."""

    def one(k: str, v: dict) -> str:
        gain = "n/a" if v["gain"] is None else f"{100 * v['gain']:+.2f} pts"
        return f"{k} {gain} ({v['pairs']} pair{'s' if v['pairs'] != 1 else ''})"

    return ", ".join(one(k, v) for k, v in by_source.items())
