"""The ``evolora`` command line."""

from __future__ import annotations

import os
import shlex
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# "Loading weights" bars would bury our own output
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from evolora.evolution.errors import ConfigError, EvoloraError
from evolora.orchestrator.cli.init import cmd_init
from evolora.orchestrator.cli.parser import build_parser, plugin_commands
from evolora.orchestrator.cli.reading import (
    cmd_export,
    cmd_lineage,
    cmd_migrate,
    cmd_reproduce,
    cmd_schema,
    cmd_studies,
    cmd_terms,
    reading_tracking_uri,
)

__all__ = ["main", "build_parser"]


def _cmd_run(args) -> int:
    from evolora.orchestrator.study.load import load_study, validation_source

    # before torch, transformers and mlflow load
    cfg = load_study(args.study, args.overrides, args.seed)
    from evolora.orchestrator.cli.preflight import (
        check_experiment,
        check_locations,
        check_model_name,
    )
    from evolora.orchestrator.run.trial import RunSettings, run_trial
    from evolora.orchestrator.tracking.runlog import default_tracking_uri

    check_model_name(args.register)
    uri = args.tracking_uri or default_tracking_uri()
    check_locations(uri)
    check_experiment(uri, cfg.mlflow.experiment)

    print(validation_source(cfg), flush=True)
    checkpoint = _resumed_checkpoint(args, cfg) if args.resume else None
    outcome = run_trial(
        cfg,
        RunSettings(
            tracking_uri=args.tracking_uri,
            progress=not args.no_progress,
            checkpoint=checkpoint,
            own_checkpoint=checkpoint is not None,
        ),
    )
    _print_outcome(cfg, outcome)
    _register_run(args, cfg, outcome)
    where = f" --tracking-uri {shlex.quote(args.tracking_uri)}" if args.tracking_uri else ""
    print(
        f"export: evolora export --run-id {outcome.run_id} --out adapters/{cfg.name}-{outcome.run_id[:8]}"
        + where
    )
    return 0


def _check_search_space(cfg, n_trials: int) -> None:
    """A sweep with no ``search:`` section is a seed study (said so), or, with ``sweep.seeds: study``, the same
    trial n times (refused)."""
    if cfg.search:
        return
    if cfg.sweep.seeds == "study":
        raise ConfigError(
            "search",
            "no search space, and sweep.seeds: study gives every trial the same seed: the sweep would run "
            "one trial n times (add a search: section, or sweep.seeds: per_trial for a seed study)",
            "{}",
        )
    print(
        f"no search space (search:): {n_trials} trials of the study as written, each with its own seed",
        flush=True,
    )


def _print_outcome(cfg, outcome) -> None:
    """What a run made: its id, validation, budget exclusions, gains by source, test, the model."""
    from evolora.orchestrator.run.progress import guard_text, source_gains_text

    r = outcome.result
    print(f"run_id: {outcome.run_id}")
    print(
        f"validation ({cfg.validation.metric}): base {r.base_val:.5f} -> champion {r.champion_val:.5f} "
        f"(gain {r.champion_val - r.base_val:+.5f}, champion from generation {r.champion_gen})"
    )
    if outcome.excluded is not None:
        n, b = len(outcome.excluded), cfg.validation.budget
        print(
            f"budget ({', '.join(guard_text(g) for g in b)}): {n} validated genome(s) excluded"
            + (
                ": "
                + "; ".join(
                    f"gen {e['gen']} genome {e['genome']} ({cfg.validation.metric} {e['value']:.5f}): "
                    f"{e['why']}"
                    for e in outcome.excluded[:3]
                )
                + (" ..." if n > 3 else "")
                if n
                else ""
            )
        )
    if outcome.val_by_source:
        print("validation gain by source: " + source_gains_text(outcome.val_by_source))
    if outcome.test is not None:
        t = outcome.test
        print(
            f"test ({cfg.validation.metric}, scored once, chose nothing): base {t['base']:.5f} -> champion "
            f"{t['champion']:.5f} (gain {t['gain']:+.5f})"
        )
        for k, v in t.get("guards", {}).items():
            print(f"test guard {k}: base {v['base']:.5f} -> champion {v['champion']:.5f}")
        if t.get("by_source"):
            print("test gain by source: " + source_gains_text(t["by_source"]))
    print(f"model: {outcome.model_uri} (mlflow.pyfunc.load_model)")


def _register_run(args, cfg, outcome) -> None:
    """``--register`` (or ``mlflow.register_run``): the champion as a new version; the alias moves if it won."""
    if args.register is None and not cfg.mlflow.register_run:
        return
    from evolora.orchestrator.sweep.parent import registered_name
    from evolora.orchestrator.tracking.models import register_champion
    from evolora.orchestrator.tracking.runlog import default_tracking_uri

    name = args.register or registered_name(cfg)
    tags = {"run": outcome.run_id, "study": cfg.name, **outcome.version_tags()}
    reg = register_champion(
        args.tracking_uri or default_tracking_uri(),
        name,
        outcome.model_uri,
        outcome.run_id,
        outcome.result.champion_val,
        tags=tags,
        force=True,
        measure=outcome.measure,
    )
    print(
        f"registered: models:/{name}/{reg.version}"
        + (
            f" (alias champion → models:/{name}@champion)"
            if reg.moved
            else f" (alias unchanged: {reg.why})"
        )
    )


def _resumed_checkpoint(args, cfg):
    """``--resume RUN_ID``: the run's checkpoint (its tag), checked to be this study's, before anything runs."""
    from pathlib import Path

    from evolora.evolution.checkpoint import CheckpointError
    from evolora.orchestrator.run.trial import CHECKPOINT_TAG, checkpoint_identity, load_checkpoint
    from evolora.orchestrator.study.sections import resolved
    from evolora.orchestrator.tracking.runlog import find_run

    uri = reading_tracking_uri(args)
    run = find_run(uri, args.resume)
    if run is None:
        raise ConfigError("--resume", f"no such run in {uri}", args.resume)
    if run.info.status == "FINISHED":
        raise ConfigError("--resume", "that run finished: there is nothing to resume", args.resume)
    path = run.data.tags.get(CHECKPOINT_TAG)
    if not path or not Path(path).is_file():
        raise ConfigError(
            "--resume", f"that run left no checkpoint ({path or 'none recorded'})", args.resume
        )
    try:
        load_checkpoint(Path(path), checkpoint_identity(resolved(cfg)))
    except CheckpointError as e:
        raise ConfigError(
            "--resume",
            f"{e} (resume with the study and --set values the run was started with)",
            args.resume,
        ) from None
    return Path(path)


def _cmd_sweep(args) -> int:
    from evolora.orchestrator.cli.preflight import (
        check_experiment,
        check_locations,
        check_timeout,
        check_workers,
    )
    from evolora.orchestrator.study.load import load_study

    if args.n_trials < 1:
        raise ConfigError("--n-trials", "must be ≥ 1", args.n_trials)
    check_workers(args.workers, args.n_trials)
    check_timeout(args.timeout)
    # before torch, transformers and mlflow load
    cfg = load_study(args.study, args.overrides, args.seed)
    _check_search_space(cfg, args.n_trials)
    from evolora.orchestrator.tracking.runlog import default_tracking_uri

    check_locations(args.tracking_uri or default_tracking_uri(), args.checkpoint_dir)
    check_experiment(args.tracking_uri or default_tracking_uri(), cfg.mlflow.experiment)
    from optuna.trial import TrialState

    from evolora.orchestrator.sweep.context import SweepContext
    from evolora.orchestrator.sweep.launch import run_sweep

    ctx = SweepContext(
        cfg,
        args.n_trials,
        args.storage,
        args.tracking_uri,
        args.workers,
        args.timeout,
        args.checkpoint_dir,
        progress=not args.no_progress,
    )
    study = run_sweep(ctx)
    from evolora.orchestrator.sweep.parent import summary_lines

    where = {"--storage": args.storage, "--tracking-uri": args.tracking_uri}
    print("\n".join(summary_lines(cfg, study, args.study, where)))
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    # the last trials of other hosts' workers
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if done < args.n_trials and running:
        print(f"{running} trial(s) still running on other workers")
    return 0 if done + running >= args.n_trials or args.timeout else 1


def _cmd_ui(args) -> int:
    from evolora.orchestrator.cli.ui import run_ui

    return run_ui(args.tracking_uri, args.storage, args.host, args.port, args.dashboard_port)


def _check_args(args) -> None:
    """The stores and numbers a command line names, before anything loads."""
    from evolora.orchestrator.cli.preflight import check_ports, check_storage, check_tracking_uri

    check_tracking_uri(getattr(args, "tracking_uri", None))
    check_storage(getattr(args, "storage", None))
    if args.command == "ui":
        check_ports(port=args.port, dashboard_port=args.dashboard_port)


class _PipeSafe:
    """Standard output that a reader may close (``evolora run … | head``): once the pipe is gone the rest of
    the output goes nowhere and the command goes on — the work it reports on is not undone by a reader
    that stopped reading."""

    def __init__(self, stream) -> None:
        self._stream, self._gone = stream, False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone = True
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone = True

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _closed_pipe_is_fine(handler, args) -> int:
    stdout = safe = sys.stdout
    if not isinstance(stdout, _PipeSafe):
        sys.stdout = safe = _PipeSafe(stdout)
    try:
        return handler(args)
    finally:
        safe.flush()
        sys.stdout = stdout
        # Python's own flush at exit would report the closed pipe: point the descriptor nowhere
        if safe._gone:
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
            except (OSError, ValueError):
                pass


def _quietly(handler, keep: str):
    """``--quiet``: no progress bars, and of what the command prints only its answer — the line starting
    with ``keep``, without the prefix (a run's id; a sweep's best trial) — for a script to read."""

    def quiet(args) -> int:
        import contextlib
        import io

        args.no_progress = True
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                return handler(args)
        finally:
            for line in out.getvalue().splitlines():
                if line.startswith(keep):
                    print(line.removeprefix(keep))

    return quiet


def main(argv: list[str] | None = None) -> int:
    from evolora.orchestrator.run.progress import quiet_libraries
    from evolora.orchestrator.signals import Terminated, handle_sigterm

    args = build_parser().parse_args(argv)
    quiet_libraries()
    restore = handle_sigterm()
    handler = {
        "init": cmd_init,
        "run": _cmd_run,
        "export": cmd_export,
        "sweep": _cmd_sweep,
        "reproduce": cmd_reproduce,
        "studies": cmd_studies,
        "ui": _cmd_ui,
        "lineage": cmd_lineage,
        "terms": cmd_terms,
        "schema": cmd_schema,
        "migrate": cmd_migrate,
    }.get(args.command) or plugin_commands()[args.command].run
    if getattr(args, "quiet", False):
        handler = _quietly(handler, {"run": "run_id: ", "sweep": "best: "}[args.command])
    try:
        _check_args(args)
        return _closed_pipe_is_fine(handler, args)
    except ConfigError as e:
        print(f"evolora: error: {e}", file=sys.stderr)
        return 2
    except EvoloraError as e:
        print(f"evolora: error: {e}", file=sys.stderr)
        return 1
    except Terminated:
        print("evolora: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("evolora: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
