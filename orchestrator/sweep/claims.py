"""Claims and liveness: which worker runs which trial, and how a dead worker's trial comes back.

A claim counts the study's trials and asks for one under the study's lock (``storage_lock``: an advisory lock
in PostgreSQL, a lock file next to a journal or SQLite file), so N workers on any number of hosts make
exactly N trials. A running trial beats from a background thread (:class:`Liveness`, time-based: four beats
per ``sweep.stale_after``); a trial whose worker is gone (dead pid on this host, or no beat for
``stale_after``) is failed and queued again with the same params and root (same seed, same checkpoint). A
worker whose trial was declared dead while it lived notices before its next write (:class:`Fence`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from evolora.evolution import Observer
from evolora.evolution.errors import EvoloraError
from evolora.orchestrator.errors import TrialFenced
from evolora.orchestrator.study.sections import StudyConfig
from evolora.orchestrator.study.space import baseline_params
from evolora.orchestrator.sweep.record import TrialRecord, attrs, key, store
from evolora.orchestrator.sweep.sampling import make_sampler
from evolora.orchestrator.sweep.storage import open_storage, storage_lock

if TYPE_CHECKING:
    from evolora.orchestrator.sweep.context import SweepContext

__all__ = [
    "RETRIABLE",
    "TRACKING_FAILURE",
    "failure_cap",
    "check_failures",
    "host_id",
    "recover",
    "claim",
    "Liveness",
    "Fence",
    "beat_interval",
]


# the MLflow server stayed unreachable past the retry window
TRACKING_FAILURE = "tracking unavailable"
RETRIABLE = ("worker died", "interrupted", TRACKING_FAILURE)


def host_id() -> str:
    """Who runs this worker, for dead-pid detection: ``$EVOLORA_HOST`` if set (several hosts sharing one
    machine name, containers), else the machine's host name."""
    return os.environ.get("EVOLORA_HOST") or socket.gethostname()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(
    study: optuna.Study, cfg: StudyConfig, storage: optuna.storages.BaseStorage
) -> list[int]:
    """Fail RUNNING trials whose worker is gone and queue a retry (same params, same root → same seed and
    checkpoint) for each died or interrupted trial not yet retried. Returns the retried trial numbers.
    ``storage`` is the study's storage (Optuna's public storage API changes another worker's trial)."""
    host, now = host_id(), time.time()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rec = TrialRecord.of(t)
        beat = (
            rec.heartbeat
            if rec.heartbeat is not None
            else (t.datetime_start.timestamp() if t.datetime_start else now)
        )
        same_host_dead = rec.host == host and not _alive(rec.pid)
        if same_host_dead or now - beat > cfg.sweep.stale_after:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, key("failure"), "worker died")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {TrialRecord.of(t).retry_of for t in trials}
    queued = []
    for t in trials:
        rec = TrialRecord.of(t)
        if t.state != TrialState.FAIL or rec.failure not in RETRIABLE or t.number in retried:
            continue
        if rec.retries >= cfg.sweep.max_retries:
            continue
        retry = {
            "root": rec.root if rec.root is not None else t.number,
            "retries": rec.retries + 1,
            "retry_of": t.number,
        }
        threads = (rec.config or {}).get("model", {}).get("threads")
        # the retry runs at the killed trial's thread count: its checkpoint matches
        if threads is not None:
            retry["threads"] = int(threads)
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=t.params,
                distributions=t.distributions,
                user_attrs=attrs(**retry),
            )
        )
        queued.append(t.number)
    return queued


def failure_cap(n_trials: int) -> int:
    """Failed trials (not retried) after which a sweep stops: failed trials do not count towards --n-trials, so
    without a cap a study whose every trial fails would never end."""
    return max(n_trials, 5)


def check_failures(ctx: SweepContext, study: optuna.Study) -> None:
    """EvoloraError once the study holds :func:`failure_cap` failed trials that will not be retried."""
    failed = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if TrialRecord.of(t).failure not in RETRIABLE
    ]
    if len(failed) >= failure_cap(ctx.n_trials):
        raise EvoloraError(
            f"{len(failed)} trials of study '{ctx.cfg.name}' failed (a sweep stops after "
            f"{failure_cap(ctx.n_trials)}); last: {TrialRecord.of(failed[-1]).failure}"
        )


def claim(ctx: SweepContext, study: optuna.Study) -> optuna.Trial | None:
    """The next trial to run (a queued retry, or a new one), or None when the budget is claimed."""
    with storage_lock(ctx.storage_url, ctx.cfg.name):
        recover(study, ctx.cfg, open_storage(ctx.storage_url))
        check_failures(ctx, study)
        n = Counter(t.state for t in study.get_trials(deepcopy=False))
        if (
            n[TrialState.WAITING] == 0
            and n[TrialState.COMPLETE] + n[TrialState.PRUNED] + n[TrialState.RUNNING]
            >= ctx.n_trials
        ):
            return None
        # a new study: its first trial runs the file's own values
        if ctx.cfg.sweep.baseline and not n:
            study.enqueue_trial(baseline_params(ctx.cfg), user_attrs=attrs(baseline=True))
        study.sampler = make_sampler(ctx.cfg, len(study.trials))
        trial = study.ask()
        store(trial, host=host_id(), pid=os.getpid(), heartbeat=time.time())
        return trial


class Liveness:
    """The trial's heartbeat, from a background thread every ``interval`` seconds: it depends on time, not
    on how long a generation takes. Each beat first reads the trial's state; when another worker has declared
    it dead (no longer RUNNING), ``fenced`` is set and beating stops, and :class:`Fence` stops the run."""

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        study: optuna.Study,
        number: int,
        interval: float,
    ) -> None:
        self.storage, self.interval = storage, interval
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), number
        )
        self.fenced, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"evolora-heartbeat-{number}", daemon=True
        )

    def start(self) -> Liveness:
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def still_ours(self) -> bool:
        """Read the trial's state now; False (and ``fenced`` set) once it is no longer RUNNING."""
        if (
            not self.fenced.is_set()
            and self.storage.get_trial(self.trial_id).state != TrialState.RUNNING
        ):
            self.fenced.set()
        return not self.fenced.is_set()

    def _beat(self) -> bool:
        if not self.still_ours():
            return False
        self.storage.set_trial_user_attr(self.trial_id, key("heartbeat"), time.time())
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            # declared dead between the read and the write, or a storage hiccup: look again
            try:
                if not self._beat():
                    return
            except Exception:
                continue


class Fence(Observer):
    """First observer of a sweep trial: reads the trial's state right before a generation's writes (lineage
    events, MLflow rows, checkpoint) and before the run's end, and raises :class:`TrialFenced` if it was
    declared dead elsewhere, so the retry is the only writer of the checkpoint and the MLflow run."""

    def __init__(self, live: Liveness) -> None:
        self.live = live

    def _check(self, *_) -> None:
        if not self.live.still_ours():  # read now, right before this generation's writes
            raise TrialFenced(
                "this trial was declared dead by another worker; it stops writing and is retried "
                "from its checkpoint"
            )

    on_population = on_events = on_generation = on_checkpoint = on_end = _check


def beat_interval(cfg: StudyConfig) -> float:
    """Four beats per ``stale_after`` (at most one every 30 s): a live worker is never stale."""
    return min(cfg.sweep.stale_after / 4, 30.0)
