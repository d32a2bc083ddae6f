"""The observers a trial adds to its loop for MLflow and resuming: the checkpoint writer, the table of samples
(causal tasks) and the curves picture."""

from __future__ import annotations

from pathlib import Path

from evolora.evolution import Observer
from evolora.evolution.checkpoint import save_checkpoint
from evolora.orchestrator.run.plots import BasinRecorder, plot_curves
from evolora.orchestrator.run.plots import close as close_figure
from evolora.orchestrator.tracking.runlog import MlflowTracker

__all__ = ["Checkpointer", "SampleTable", "CurvesImage", "Callbacks"]


class Checkpointer(Observer):
    """Writes the loop state, the MLflow run id and the basin snapshots atomically after each checkpointed
    generation."""

    def __init__(self, path: Path, config: dict, run_id: str | None, basins: BasinRecorder) -> None:
        self.path, self.config, self.run_id, self.basins = Path(path), config, run_id, basins

    def on_checkpoint(self, state: dict) -> None:
        # data only (arrays + JSON + checksum), written atomically: a kill mid-write keeps the previous one
        save_checkpoint(
            self.path,
            {
                "loop": state,
                "run_id": self.run_id,
                "config": self.config,
                "basins": self.basins.snaps,
            },
        )


class SampleTable(Observer):
    """Tasks that generate text (causal): at every validation, greedy generations for a fixed set of
    held-out prompts, with each fitness term, appended to the run's ``samples.json`` table — text next to the
    curves while the run goes. Two genomes each time: the ``candidate`` this generation validated (what the
    evolution climbs to: GA's best, ES's mean) and the ``champion`` (best validation so far), so a reward
    being gamed shows in the candidate's text even when validation keeps the champion at the base."""

    FILE = "samples.json"

    def __init__(self, task, tracker: MlflowTracker) -> None:
        self.task, self.tracker, self.evo = task, tracker, None
        self.after = tracker.logged_upto  # a resumed run does not repeat what it already logged

    def bind(self, loop) -> None:
        self.evo = loop

    def on_generation(self, row: dict) -> None:
        if "val" not in row or row["gen"] <= self.after:
            return
        rows = []
        for who, g in (("candidate", self.evo.candidate), ("champion", self.evo.champion)):
            rows += [
                {"gen": row["gen"], "who": who, "genome": int(g["id"]), **r}
                for r in self.task.samples(g["genome"])
            ]
        self.tracker.log_table(rows, self.FILE)


class CurvesImage(Observer):
    """The run's ``curves.png`` picture (fitness; generation-best validation, champion and base together) as
    the MLflow image ``evolution/curves``, the first of the run's metric charts (MLflow gives a key's prefix its
    own section and puts named sections before "Model metrics"): redrawn at validations while the run
    goes (about ten times a run) and at its end. Always logged at step 0, where MLflow's image chart shows
    the latest picture logged (at several steps it would open on the first). At the end the picture also opens
    the run's description (its MLflow page's first block), above ``note``."""

    KEY = "evolution/curves"

    def __init__(
        self, tracker: MlflowTracker, title: str, generations: int, redrawn: bool, note: str = ""
    ) -> None:
        self.tracker, self.title, self.redrawn, self.note = tracker, title, redrawn, note
        self.every = max(1, -(-generations // 10))
        self.evo, self.last = None, tracker.logged_upto

    def bind(self, loop) -> None:
        self.evo = loop

    def _figure(self):
        return plot_curves(list(self.evo.logbook), self.title, redrawn=self.redrawn)

    def on_generation(self, row: dict) -> None:
        if "val" in row and row["gen"] - self.last >= self.every:
            fig = self._figure()
            self.tracker.log_image(fig, self.KEY, step=0)
            close_figure(fig)
            self.last = row["gen"]

    def finish(self, gen: int) -> None:
        """The run's end: one drawing, logged as the image (unless generation ``gen`` was drawn already) and
        as the ``curves.png`` artifact."""
        fig = self._figure()
        if gen > self.last:
            self.tracker.log_image(fig, self.KEY, step=0)
            self.last = gen
        self.tracker.log_figure(fig, "curves.png")
        close_figure(fig)
        self.tracker.describe(self._description())

    def _description(self) -> str:
        """The run's description (Markdown, the first thing on its MLflow page): the curves picture, where the
        champion came from, then the run's note (what each metric means)."""
        src = f"get-artifact?path=curves.png&run_uuid={self.tracker.run_id}"
        lines = [f"![curves: fitness, validation and the champion by generation]({src})", ""]
        champ = getattr(self.evo, "champion", None)
        if champ:
            lines.append(
                f"Champion from generation {champ['gen']}: validation {champ['val']:.4f} "
                f"(base {self.evo.base_val:.4f})."
            )
        return "\n".join(lines) + (f"\n\n{self.note}" if self.note else "")


class Callbacks(Observer):
    """A script's hooks on the loop (``evolora.run(callbacks=..., time_budget=...)``): each callback is
    called with every generation's row (a dict: ``gen``, ``fit_best``, ``val`` when validated,
    ``val_champion``, …) and may return True to stop; ``time_budget`` seconds after the loop starts it stops
    by itself. A stop ends the run after one more generation, validated as a last one is."""

    def __init__(self, callbacks=(), time_budget: float | None = None) -> None:
        import time

        self.callbacks, self.time_budget, self.clock = list(callbacks), time_budget, time.monotonic
        self.loop, self.t0, self.stopped = None, None, None

    def bind(self, loop) -> None:
        self.loop = loop

    def on_start(self, info: dict) -> None:
        self.t0 = self.clock()

    def on_generation(self, row: dict) -> None:
        wants = [bool(cb(dict(row))) for cb in self.callbacks]  # every callback sees every row
        over = self.time_budget is not None and self.clock() - self.t0 >= self.time_budget
        if (any(wants) or over) and self.stopped is None:
            self.stopped = "callback" if any(wants) else "time budget"
            self.loop.stop()
