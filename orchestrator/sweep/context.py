"""What every part of a sweep shares: the study, its budget, the stores, the workers and where checkpoints go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evolora.orchestrator.study.sections import StudyConfig
from evolora.orchestrator.sweep.storage import checkpoints_beside, default_storage
from evolora.orchestrator.tracking.runlog import default_tracking_uri

__all__ = ["SweepContext"]


def _torch_threads_now() -> int:
    import torch

    return torch.get_num_threads()


@dataclass
class SweepContext:
    cfg: StudyConfig  # the base config (searched paths hold their file values)
    n_trials: int
    storage: str | None = None
    tracking_uri: str | None = None
    workers: int = 1
    timeout: float | None = None
    checkpoint_dir: str | None = None
    progress: bool = True
    parent_run_id: str | None = None  # set by run_sweep
    # the Optuna study's own id (set by open_study): a checkpoint belongs to one study
    study_uid: str = ""
    # torch threads of the process that starts the sweep, read once: a trial sets its own pinned count, which
    # must not become the next trial's
    own_threads: int = field(default_factory=_torch_threads_now)

    def __post_init__(self) -> None:
        # resolved here, in the process that starts the sweep: a spawned worker must not resolve it again
        # from an environment that MLflow's set_tracking_uri has since rewritten
        if self.tracking_uri is None:
            self.tracking_uri = default_tracking_uri()
        if (
            self.storage is None
        ):  # the same for the storage ($EVOLORA_STORAGE, else ./mlruns/): workers inherit it
            self.storage = default_storage()

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage()

    @property
    def uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def checkpoint(self, root: int) -> Path:
        base = (
            Path(self.checkpoint_dir)
            if self.checkpoint_dir
            else checkpoints_beside(self.storage_url)
        )
        study = base / self.cfg.name
        return (study / self.study_uid if self.study_uid else study) / f"trial-{root}.npz"

    @property
    def checkpoint_owner(self) -> dict:
        """What a trial's checkpoint is written for besides its config: this study, not another one of the same
        name (a new storage, a deleted and recreated study) that shares the checkpoint directory."""
        return {"study": self.cfg.name, "study_uid": self.study_uid}
