"""What a user sees while a run goes: a progress bar over generations (tqdm, the best fitness and the last
validation score), and third-party libraries' chatter quieted."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

from evolution.observers import Observer

__all__ = ["ProgressBar", "quiet_libraries"]


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
        self.bar.set_postfix(best=f"{row['fit_best']:.4f}", val=f"{self.last_val:.4f}", evals_s=f"{row['evals_per_s']:.1f}")
        self.bar.update(1)

    def on_end(self, result) -> None:
        self.bar.close()


def quiet_libraries() -> None:
    """Quiet third-party chatter without importing the libraries (a bad study file is reported before
    torch, transformers or mlflow load)."""
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
    if "transformers" in sys.modules:  # already loaded (main() called in-process): switch its bars off now
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
