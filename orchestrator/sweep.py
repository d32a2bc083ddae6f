"""The outer loop: an Optuna study over a study file's search space, one MLflow child run per trial.

Each trial: claim (under a host lock, so N workers make exactly N trials) → sample the searched config
paths → a resolved, fully concrete config (seed derived from study seed + trial number, torch threads
pinned) → ``run_trial`` with an Optuna reporter (pruning on the validation metric), a per-generation
checkpoint and a heartbeat from a background thread (time-based: four beats per ``sweep.stale_after``,
whatever a generation's length) → tell Optuna. A worker that dies mid-trial is detected (dead pid on this
host, or no heartbeat for ``stale_after`` seconds) and its trial retried from the last checkpoint; a worker
whose trial was declared dead while it lived notices at its next beat and stops writing (``Fence``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from evolution import Observer
from evolution.errors import ConfigError, EvoloraError, TrialFenced, TrialPruned

from .config import SearchSpec, StudyConfig, resolved, with_values
from .storage import default_storage, open_storage, storage_lock
from .tracking import MlflowTracker, default_tracking_uri, get_client

__all__ = ["SweepContext", "run_sweep", "open_study", "trial_config", "trial_seed", "sample", "ATTR"]

optuna.logging.set_verbosity(optuna.logging.WARNING)

ATTR = "evolora:"  # prefix of our trial/study user attributes
RETRIABLE = ("worker died", "interrupted")


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

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage()

    @property
    def uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def checkpoint(self, root: int) -> Path:
        base = Path(self.checkpoint_dir) if self.checkpoint_dir else Path.cwd() / "mlruns" / "checkpoints"
        return base / self.cfg.name / f"trial-{root}.npz"


# ---- search space ------------------------------------------------------------------------------------
def _label(choice: Any) -> Any:
    return choice if choice is None or isinstance(choice, (str, int, float, bool)) else json.dumps(choice)


def suggest(trial: optuna.Trial, path: str, spec: SearchSpec) -> Any:
    if spec.type == "float":
        return trial.suggest_float(path, spec.low, spec.high, log=spec.log, step=spec.step)
    if spec.type == "int":
        return trial.suggest_int(path, int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
    labels = [_label(c) for c in spec.choices]
    return spec.choices[labels.index(trial.suggest_categorical(path, labels))]


def sample(trial: optuna.Trial, cfg: StudyConfig) -> dict[str, Any]:
    """Sample the search space define-by-run, in file order: an entry with ``when`` is sampled only if the
    paths it names (sampled just before, or fixed in the file) hold one of its listed values."""
    fixed = resolved(cfg)
    values: dict[str, Any] = {}

    def current(path: str) -> Any:
        if path in values:
            return values[path]
        node: Any = fixed
        for k in path.split("."):
            node = node[int(k)] if isinstance(node, list) else node[k]
        return node

    for path, spec in cfg.search.items():
        if all(current(c) in accepted for c, accepted in (spec.when or {}).items()):
            values[path] = suggest(trial, path, spec)
    return values


def decode(spec: SearchSpec, value: Any) -> Any:
    """A stored Optuna param value → the config value (categorical lists are stored as JSON labels)."""
    if spec.type == "categorical":
        labels = [_label(c) for c in spec.choices]
        return spec.choices[labels.index(value)] if value in labels else value
    return value


def trial_seed(study_seed: int, root: int) -> int:
    return int(np.random.SeedSequence([study_seed, root]).generate_state(1)[0] & 0x7FFFFFFF)


def trial_config(base: StudyConfig, params: dict[str, Any], seed: int, threads: int) -> StudyConfig:
    values = {p: decode(base.search[p], v) if p in base.search else v for p, v in params.items()}
    return with_values(base, {**values, "seed": seed, "model.threads": threads})


# ---- study and parent run ---------------------------------------------------------------------------
def _sampler(cfg: StudyConfig, n: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded from (study seed, number of trials so far): workers and resumed sweeps don't replay the same
    draws, and a sequential sweep is deterministic."""
    seed = trial_seed(cfg.seed, 1_000_000 + n)
    if cfg.sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(cfg: StudyConfig) -> optuna.pruners.BasePruner:
    if cfg.sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=cfg.sweep.pruner_warmup)
    if cfg.sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.evolution.generations)
    return optuna.pruners.NopPruner()


def open_study(ctx: SweepContext, create: bool = True) -> optuna.Study:
    storage = open_storage(ctx.storage_url)
    cfg = ctx.cfg
    if not create:
        return optuna.load_study(study_name=cfg.name, storage=storage, sampler=_sampler(cfg), pruner=_pruner(cfg))
    study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=_sampler(cfg), pruner=_pruner(cfg),
                                direction=cfg.sweep.direction, load_if_exists=True)
    stored = study.user_attrs.get(ATTR + "base_config")
    conf = resolved(cfg)
    if stored is None:
        study.set_user_attr(ATTR + "base_config", conf)
    elif stored != conf:
        diff = next(k for k in sorted(set(stored) | set(conf)) if stored.get(k) != conf.get(k))
        raise ConfigError(diff, f"study '{cfg.name}' already exists in {ctx.storage_url} with a different value here; "
                          "change `name` to start a new study", conf.get(diff))
    return study


def _parent_run(ctx: SweepContext, study: optuna.Study) -> str:
    """The study's one parent run: made by the first host to get here (under the study's lock, so hosts
    starting at once share it), resumed by the others."""
    with storage_lock(ctx.storage_url, f"parent-{ctx.cfg.name}"):
        return _find_or_make_parent(ctx, study)


def _find_or_make_parent(ctx: SweepContext, study: optuna.Study) -> str:
    client = get_client(ctx.uri)
    run_id = study.user_attrs.get(ATTR + "parent_run_id")
    if run_id:
        try:
            client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:
            pass  # recorded in another tracking store: make a parent here
    tracker = MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, f"sweep-{ctx.cfg.name}", resolved(ctx.cfg),
                            {"evolora.role": "sweep", "evolora.study": ctx.cfg.name, "optuna.storage": ctx.storage_url})
    study.set_user_attr(ATTR + "parent_run_id", tracker.run_id)
    return tracker.run_id


# ---- liveness and retries ---------------------------------------------------------------------------
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


def recover(study: optuna.Study, cfg: StudyConfig, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail RUNNING trials whose worker is gone and queue a retry (same params, same root → same seed and
    checkpoint) for each died or interrupted trial not yet retried. Returns the retried trial numbers.
    ``storage`` is the study's storage (Optuna's public storage API changes another worker's trial)."""
    host, now = host_id(), time.time()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        a = t.user_attrs
        beat = a.get(ATTR + "heartbeat", t.datetime_start.timestamp() if t.datetime_start else now)
        same_host_dead = a.get(ATTR + "host") == host and not _alive(a.get(ATTR + "pid"))
        if same_host_dead or now - beat > cfg.sweep.stale_after:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, ATTR + "failure", "worker died")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(ATTR + "retry_of") for t in trials}
    queued = []
    for t in trials:
        a = t.user_attrs
        if t.state != TrialState.FAIL or a.get(ATTR + "failure") not in RETRIABLE or t.number in retried:
            continue
        if a.get(ATTR + "retries", 0) >= cfg.sweep.max_retries:
            continue
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=t.params, distributions=t.distributions,
            user_attrs={ATTR + "root": a.get(ATTR + "root", t.number), ATTR + "retries": a.get(ATTR + "retries", 0) + 1,
                        ATTR + "retry_of": t.number}))
        queued.append(t.number)
    return queued


def _claim(ctx: SweepContext, study: optuna.Study) -> optuna.Trial | None:
    with storage_lock(ctx.storage_url, ctx.cfg.name):
        recover(study, ctx.cfg, open_storage(ctx.storage_url))
        n = Counter(t.state for t in study.get_trials(deepcopy=False))
        if n[TrialState.WAITING] == 0 and n[TrialState.COMPLETE] + n[TrialState.PRUNED] + n[TrialState.RUNNING] >= ctx.n_trials:
            return None
        study.sampler = _sampler(ctx.cfg, len(study.trials))
        trial = study.ask()
        trial.set_user_attr(ATTR + "host", host_id())
        trial.set_user_attr(ATTR + "pid", os.getpid())
        trial.set_user_attr(ATTR + "heartbeat", time.time())
        return trial


# ---- one trial --------------------------------------------------------------------------------------
class OptunaReporter(Observer):
    """Reports the best validation so far every ``every`` generations; raises TrialPruned when told to."""

    def __init__(self, trial: optuna.Trial, every: int) -> None:
        self.trial, self.every = trial, every

    def on_generation(self, row: dict) -> None:
        gen = row["gen"]
        if "val_champion" in row and gen > 0 and gen % self.every == 0:
            self.trial.report(row["val_champion"], step=gen)
            if self.trial.should_prune():
                raise TrialPruned(f"pruned at generation {gen} (best validation {row['val_champion']:.5f})")


class ResumeNote(Observer):
    """Records on the trial the generation a retried trial resumed from (its checkpoint's)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_start(self, info: dict) -> None:
        if info.get("resumed"):
            self.trial.set_user_attr(ATTR + "resumed_from_gen", int(info["gen"]))


class Liveness:
    """The trial's heartbeat, from a background thread every ``interval`` seconds: it depends on time, not
    on how long a generation takes. Each beat first reads the trial's state; when another worker has declared
    it dead (no longer RUNNING), ``fenced`` is set and beating stops, and :class:`Fence` stops the run."""

    def __init__(self, storage: optuna.storages.BaseStorage, study: optuna.Study, number: int, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
        self.fenced, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"evolora-heartbeat-{number}", daemon=True)

    def start(self) -> "Liveness":
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def still_ours(self) -> bool:
        """Read the trial's state now; False (and ``fenced`` set) once it is no longer RUNNING."""
        if not self.fenced.is_set() and self.storage.get_trial(self.trial_id).state != TrialState.RUNNING:
            self.fenced.set()
        return not self.fenced.is_set()

    def _beat(self) -> bool:
        if not self.still_ours():
            return False
        self.storage.set_trial_user_attr(self.trial_id, ATTR + "heartbeat", time.time())
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self._beat():
                    return
            except Exception:  # declared dead between the read and the write, or a storage hiccup: look again
                continue


class Fence(Observer):
    """First observer of a sweep trial: reads the trial's state right before a generation's writes (lineage
    events, MLflow rows, checkpoint) and before the run's end, and raises :class:`TrialFenced` if it was
    declared dead elsewhere, so the retry is the only writer of the checkpoint and the MLflow run."""

    def __init__(self, live: Liveness) -> None:
        self.live = live

    def _check(self, *_) -> None:
        if not self.live.still_ours():  # read now, right before this generation's writes
            raise TrialFenced("this trial was declared dead by another worker; it stops writing and is retried "
                              "from its checkpoint")

    on_population = on_events = on_generation = on_checkpoint = on_end = _check


def _beat_interval(cfg: StudyConfig) -> float:
    """Four beats per ``stale_after`` (at most one every 30 s): a live worker is never stale."""
    return min(cfg.sweep.stale_after / 4, 30.0)


def _threads(ctx: SweepContext) -> int:
    import torch

    if ctx.cfg.model.threads is not None:
        return ctx.cfg.model.threads
    return 1 if ctx.workers > 1 else torch.get_num_threads()


def _run_one(ctx: SweepContext, study: optuna.Study, trial: optuna.Trial) -> TrialState:
    from .runner import run_trial

    root = int(trial.user_attrs.get(ATTR + "root", trial.number))
    seed = trial_seed(ctx.cfg.seed, root)
    tags = {"optuna.study": ctx.cfg.name, "optuna.trial_number": str(trial.number), "optuna.trial_root": str(root)}
    if trial.user_attrs.get(ATTR + "retry_of") is not None:
        tags["optuna.retry_of"] = str(trial.user_attrs[ATTR + "retry_of"])
    trackers: list[MlflowTracker] = []
    live = Liveness(open_storage(ctx.storage_url), study, trial.number, _beat_interval(ctx.cfg)).start()
    try:
        params = sample(trial, ctx.cfg)
        cfg = trial_config(ctx.cfg, trial.params, seed, _threads(ctx))
        trial.set_user_attr(ATTR + "root", root)
        trial.set_user_attr(ATTR + "seed", seed)
        trial.set_user_attr(ATTR + "config", resolved(cfg))
        assert set(params) == set(trial.params)
        outcome = run_trial(
            cfg, tracking_uri=ctx.uri, progress=ctx.progress, parent_run_id=ctx.parent_run_id,
            run_name=f"t{root:03d}-{cfg.evolution.strategy}-s{seed}", extra_tags=tags,
            observers=[OptunaReporter(trial, ctx.cfg.sweep.report_every), ResumeNote(trial)], guards=[Fence(live)],
            checkpoint=ctx.checkpoint(root), extra_params=trial.params,
            on_tracker=lambda t: (trackers.append(t), trial.set_user_attr(ATTR + "run_id", t.run_id)),
        )
    except TrialFenced:
        return TrialState.FAIL  # another worker owns the retry now: write nothing more, tell nothing
    except TrialPruned as e:
        trial.set_user_attr(ATTR + "pruned", str(e))
        _tag(trackers, "PRUNED", trial.number)
        study.tell(trial, state=TrialState.PRUNED)
        _drop_checkpoint(ctx, root)
        _on_parent(ctx, study, trial.number, None)
        return TrialState.PRUNED
    except KeyboardInterrupt:
        trial.set_user_attr(ATTR + "failure", "interrupted")
        _tag(trackers, "FAIL", trial.number)
        study.tell(trial, state=TrialState.FAIL)
        raise
    except (EvoloraError, ValueError, RuntimeError) as e:
        if live.fenced.is_set():  # e.g. Optuna refusing a report on a trial declared dead meanwhile
            return TrialState.FAIL
        trial.set_user_attr(ATTR + "failure", f"{type(e).__name__}: {e}")
        if not trackers:  # failed before its run existed (e.g. an invalid sampled combination): make it visible
            _failed_run(ctx, trial, tags, e)
        _tag(trackers, "FAIL", trial.number)
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    finally:
        live.stop()
    if live.fenced.is_set():
        return TrialState.FAIL
    r = outcome.result
    try:
        trial.set_user_attr(ATTR + "champion_sha256", _sha(r.champion))
        trial.set_user_attr(ATTR + "best_fitness", r.best_fitness)
        trial.set_user_attr(ATTR + "val_base", r.base_val)
        if outcome.test is not None:  # recorded beside the trial; the objective below is validation only
            trial.set_user_attr(ATTR + "test", outcome.test)
        study.tell(trial, r.champion_val)
    except (ValueError, RuntimeError):  # declared dead after its last beat: the retry resumes at the end
        return TrialState.FAIL
    _tag(trackers, "COMPLETE", trial.number)
    _drop_checkpoint(ctx, root)
    _on_parent(ctx, study, trial.number, r.champion_val)
    if ctx.cfg.mlflow.register_best and outcome.model_uri:
        _register(ctx, study, trial.number, outcome)
    return TrialState.COMPLETE


def _on_parent(ctx: SweepContext, study: optuna.Study, number: int, value: float | None) -> None:
    """The optimisation history as the parent run's own curves (step = trial number): each finished trial's
    value and the best so far, so MLflow charts it natively."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number <= number]
    metrics = {} if value is None else {"trial_value": value}
    if done:
        metrics["best_so_far"] = (max if ctx.cfg.sweep.direction == "maximize" else min)(t.value for t in done)
    if metrics:
        MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, "", {}, run_id=ctx.parent_run_id,
                      attach=True).log_metrics(metrics, step=number)


def registered_name(cfg: StudyConfig) -> str:
    return cfg.mlflow.registered_model or cfg.name


def _register(ctx: SweepContext, study: optuna.Study, number: int, outcome) -> None:
    """A new best trial becomes a version of the study's registered model and takes the `champion` alias;
    under the storage lock, so two workers finishing at once cannot move it backwards."""
    from .tracking import register_champion

    tags = {"trial": number, "study": ctx.cfg.name, "optuna.storage": ctx.storage_url, **outcome.version_tags()}
    with storage_lock(ctx.storage_url, f"register-{ctx.cfg.name}"):
        register_champion(ctx.uri, registered_name(ctx.cfg), outcome.model_uri, outcome.run_id,
                          outcome.result.champion_val, ctx.cfg.sweep.direction, tags)


def _drop_checkpoint(ctx: SweepContext, root: int) -> None:
    ck = ctx.checkpoint(root)
    ck.unlink(missing_ok=True)
    ck.with_suffix(".lineage.jsonl").unlink(missing_ok=True)


def _sha(genome: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(genome, dtype=np.float32).tobytes()).hexdigest()


def _tag(trackers: list[MlflowTracker], state: str, number: int) -> None:
    for t in trackers:
        t.set_tags({"optuna.state": state, "optuna.trial_number": str(number)})


def _failed_run(ctx: SweepContext, trial: optuna.Trial, tags: dict, err: BaseException) -> None:
    t = MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, f"trial-{trial.number}", resolved(ctx.cfg), tags,
                      ctx.parent_run_id, extra_params=trial.params)
    trial.set_user_attr(ATTR + "run_id", t.run_id)
    t.set_tags({"optuna.state": "FAIL"})
    t.finish("FAILED", err)


# ---- workers ----------------------------------------------------------------------------------------
def worker(ctx: SweepContext, index: int = 0, study: optuna.Study | None = None) -> Counter:
    """Claim and run trials until the study has ``n_trials`` (or the timeout passes). When the budget is
    claimed but trials still run elsewhere, wait for them: if one's worker dies, its retry is claimed here,
    so the study completes while any worker of any host lives."""
    if index:
        from .cli import _quiet_libraries

        _quiet_libraries()
    study = study or open_study(ctx, create=False)
    start, done, failures_in_a_row, waiting = time.time(), Counter(), 0, False
    while ctx.timeout is None or time.time() - start < ctx.timeout:
        trial = _claim(ctx, study)
        if trial is None:
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            if not running:
                break
            if not waiting:
                print(f"evolora: the budget is claimed; waiting for {running} trial(s) still running (their retry "
                      "is taken here if a worker dies)", flush=True)
            waiting = True
            time.sleep(min(_beat_interval(ctx.cfg), 5.0))
            continue
        waiting = False
        state = _run_one(ctx, study, trial)
        done[state.name] += 1
        failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        if failures_in_a_row >= 5:
            raise EvoloraError(f"5 trials in a row failed; last: {study.trials[trial.number].user_attrs.get(ATTR + 'failure')}")
    return done


def _worker_entry(ctx: SweepContext, index: int) -> None:
    try:
        worker(ctx, index)
    except KeyboardInterrupt:
        pass


def run_sweep(ctx: SweepContext) -> optuna.Study:
    study = open_study(ctx)
    ctx.parent_run_id = _parent_run(ctx, study)
    status = "FINISHED"
    try:
        if ctx.workers <= 1:
            worker(ctx, study=study)
        else:
            spawn = mp.get_context("spawn")
            procs = [spawn.Process(target=_worker_entry, args=(ctx, i + 1), name=f"evolora-worker-{i}") for i in range(ctx.workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                if p.exitcode and p.exitcode < 0:  # killed by a signal: its trial is retried by a live worker
                    print(f"evolora: {p.name} was killed by signal {-p.exitcode}; its trial is retried from its "
                          "checkpoint by a worker still running (or by the next sweep command)", flush=True)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _finish_parent(ctx, study, status)
    return study


def _parent_note(ctx: SweepContext, study: optuna.Study, best, n: Counter) -> str:
    """The study's answer in the parent run's description: the best trial, its params and figures."""
    a = best.user_attrs
    base = a.get(ATTR + "val_base")
    lines = [f"**{ctx.cfg.name}**: {n.get('COMPLETE', 0)} complete, {n.get('PRUNED', 0)} pruned, "
             f"{n.get('FAIL', 0)} failed trials; objective: {ctx.cfg.validation.metric} on validation "
             f"({ctx.cfg.sweep.direction}).", "",
             f"**Best: trial {best.number}** — validation {best.value:.5f}"
             + (f" (base {base:.5f}, gain {best.value - base:+.5f})" if base is not None else "")]
    test = a.get(ATTR + "test")
    if test:
        lines[-1] += f"; test {test['champion']:.5f} (gain {test['gain']:+.5f}, chose nothing)"
    lines += ["", "| parameter | value |", "|---|---|", *[f"| `{k}` | {v} |" for k, v in best.params.items()], ""]
    if ctx.cfg.mlflow.register_best:
        lines.append(f"Model: `models:/{registered_name(ctx.cfg)}@champion`; adapter: "
                     f"`evolora export {ctx.cfg.name} --trial {best.number} --out DIR`.")
    return "\n".join(lines)


def _finish_parent(ctx: SweepContext, study: optuna.Study, status: str) -> None:
    import tempfile

    from .plots import plot_study

    tracker = MlflowTracker(ctx.uri, ctx.cfg.mlflow.experiment, "", {}, run_id=ctx.parent_run_id)
    n = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    tracker.log_metrics({f"trials_{k.lower()}": v for k, v in n.items()})
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if done:
        best = study.best_trial
        tracker.log_metrics({"best_value": best.value})
        tracker.set_tags({"evolora.best_trial": best.number, "evolora.best_run_id": best.user_attrs.get(ATTR + "run_id", ""),
                          "mlflow.note.content": _parent_note(ctx, study, best, n)})
        with tempfile.TemporaryDirectory() as tmp:
            plot_study(study, Path(tmp))
            tracker.log_artifacts(tmp, "study")
    tracker.finish(status)
