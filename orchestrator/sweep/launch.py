"""A sweep launched: its data and plug-in terms checked before anything is written, then one worker in this
process or several worker processes, stopped together on Ctrl-C or SIGTERM."""

from __future__ import annotations

import multiprocessing as mp

import optuna

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.signals import Terminated, handle_sigterm
from evolora.orchestrator.sweep.context import SweepContext
from evolora.orchestrator.sweep.optuna_study import open_study
from evolora.orchestrator.sweep.parent import finish_parent, parent_run
from evolora.orchestrator.sweep.worker import run_worker

__all__ = ["run_sweep", "check_data", "script_terms", "check_workers_see_terms"]


def _worker_entry(ctx: SweepContext, index: int) -> None:
    handle_sigterm()  # a worker SIGTERMed (by the sweep's own process, or a scheduler) fails its trial cleanly
    try:
        run_worker(ctx, index)
    except KeyboardInterrupt:
        pass


def _stop_workers(procs: list, signal_them: bool) -> None:
    """Wait for the workers to end their trials (each fails its trial and keeps its checkpoint). On SIGTERM
    to this process only they are told (SIGTERM each); Ctrl-C in a terminal already reached them all."""
    for p in procs:
        if signal_them and p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=60)


def check_data(cfg) -> None:
    """The study's data read and checked once before anything is written (a trial reads them again)."""
    from evolora.fitness.build import load_data
    from evolora.orchestrator.assembly import task_spec

    load_data(task_spec(cfg))


def script_terms(cfg) -> list[str]:
    """The terms the study names (fitness, validation, guards, watched, objectives) that this process's
    script registered (``evolora.register_*``): they exist in a new process only if the script registers
    them when imported."""
    from evolora.fitness import FITNESS_TERMS

    v = cfg.validation
    names = (
        [t.name for t in cfg.fitness.terms] + [v.metric] + [g.metric for g in (*v.budget, *v.watch)]
    )
    names += [o.metric for o in cfg.sweep.objectives or ()]
    return [
        n
        for n in dict.fromkeys(names)
        if n in FITNESS_TERMS and FITNESS_TERMS.origin(n).startswith("python ")
    ]


def _terms_in_new_process(names: list[str]) -> list[str]:
    from evolora.fitness import FITNESS_TERMS

    return [n for n in names if n not in FITNESS_TERMS]


def check_workers_see_terms(ctx: SweepContext) -> None:
    """With several worker processes, every script-registered term the study names must exist in a worker:
    one process is started as the workers are (spawn: the script's module-level code runs, its ``if __name__
    == "__main__"`` block does not) and asked. Missing ones are refused before anything is written."""
    names = script_terms(ctx.cfg)
    if ctx.workers <= 1 or not names:
        return
    with mp.get_context("spawn").Pool(1) as pool:
        missing = pool.apply(_terms_in_new_process, (names,))
    if missing:
        raise ConfigError(
            "workers",
            f"term(s) {', '.join(missing)} registered by this script do not exist in "
            "worker processes (they are new processes: register at module level, not under if "
            "__name__ == '__main__'; or install them as an entry point; or use one worker)",
            ctx.workers,
        )


def run_sweep(ctx: SweepContext) -> optuna.Study:
    procs: list = []
    check_data(ctx.cfg)  # bad data: exit 2 before the study, its parent run or a checkpoint exist
    check_workers_see_terms(ctx)
    if ctx.cfg.ray.actors:
        from evolora.orchestrator.distributed.driver import check_ray
        from evolora.orchestrator.distributed.pool import check_terms_reach_actors

        # terms actors cannot load, an unreachable cluster: exit 2 as well
        check_terms_reach_actors(ctx.cfg)
        check_ray(ctx.cfg)
    study = open_study(ctx)
    ctx.parent_run_id = parent_run(ctx, study)
    status = "FINISHED"
    try:
        if ctx.workers <= 1:
            run_worker(ctx, study=study)
        else:
            spawn = mp.get_context("spawn")
            procs = [
                spawn.Process(target=_worker_entry, args=(ctx, i + 1), name=f"evolora-worker-{i}")
                for i in range(ctx.workers)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                # killed by a signal: its trial is retried by a live worker
                if p.exitcode and p.exitcode < 0:
                    print(
                        f"evolora: {p.name} was killed by signal {-p.exitcode}; its trial is retried from its "
                        "checkpoint by a worker still running (or by the next sweep command)",
                        flush=True,
                    )
    except KeyboardInterrupt as e:
        status = "KILLED"
        _stop_workers(procs, signal_them=isinstance(e, Terminated))
        raise
    finally:
        finish_parent(ctx, study, status)
    return study
