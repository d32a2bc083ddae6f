"""A progress bar over generations (tqdm), showing the best fitness and the last validation score."""

from __future__ import annotations

from tqdm.auto import tqdm

from evolution.observers import Observer

__all__ = ["ProgressBar"]


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
