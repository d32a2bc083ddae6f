"""The ``evolora`` command line."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault(
    "HF_HUB_DISABLE_PROGRESS_BARS", "1"
)  # "Loading weights" bars would bury our own output

from evolora.evolution.errors import ConfigError, EvoloraError
from evolora.orchestrator.cli.parser import build_parser, plugin_commands

__all__ = ["main", "build_parser"]


def _cmd_run(args) -> int:
    from evolora.orchestrator.run.progress import guard_text, source_gains_text
    from evolora.orchestrator.study.load import load_study, validation_source

    cfg = load_study(
        args.study, args.overrides, args.seed
    )  # before torch, transformers and mlflow load
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
    if args.register is not None or cfg.mlflow.register_run:
        from evolora.orchestrator.sweep.parent import registered_name
        from evolora.orchestrator.tracking.models import register_champion

        name = args.register or registered_name(cfg)
        tags = {"run": outcome.run_id, "study": cfg.name, **outcome.version_tags()}
        reg = register_champion(
            args.tracking_uri or default_tracking_uri(),
            name,
            outcome.model_uri,
            outcome.run_id,
            r.champion_val,
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
    print(
        f"export: evolora export --run-id {outcome.run_id} --out adapters/{cfg.name}-{outcome.run_id[:8]}"
    )
    return 0


def _resumed_checkpoint(args, cfg):
    """``--resume RUN_ID``: the run's checkpoint (its tag), checked to be this study's, before anything runs."""
    from pathlib import Path

    from evolora.evolution.checkpoint import CheckpointError
    from evolora.orchestrator.run.trial import CHECKPOINT_TAG, checkpoint_identity, load_checkpoint
    from evolora.orchestrator.study.sections import resolved
    from evolora.orchestrator.tracking.runlog import find_run

    uri = _reading_tracking_uri(args)
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


def _study_name(arg: str) -> str:
    if arg.endswith((".yaml", ".yml")):
        from evolora.orchestrator.study.load import load_study

        return load_study(arg).name
    return arg


def _reading_tracking_uri(args) -> str:
    """The store a reading command (export, lineage) reads from; it must exist: nothing is created."""
    from evolora.orchestrator.tracking.runlog import default_tracking_uri, existing_tracking_uri

    uri = existing_tracking_uri(args.tracking_uri)
    if uri is None:
        raise ConfigError(
            "--tracking-uri",
            "no MLflow store here yet (run a study, or name the store)",
            default_tracking_uri(),
        )
    return uri


def _cmd_export(args) -> int:
    from evolora.orchestrator.run.export import export_run

    run_id = args.run_id
    if args.study and args.study.startswith("models:/"):
        from evolora.orchestrator.run.export import export_model

        if run_id is not None or args.trial is not None:
            raise ConfigError("--run-id/--trial", "give a models:/ URI alone")
        out = export_model(args.study, args.out, _reading_tracking_uri(args))
        print(f"wrote PEFT adapter of {args.study} to {out}")
        return 0
    if (run_id is None) == (args.trial is None):
        raise ConfigError(
            "--run-id/--trial", "give exactly one of --run-id ID or STUDY --trial N|best"
        )
    if args.trial is not None:
        from evolora.orchestrator.sweep.record import TrialRecord
        from evolora.orchestrator.sweep.reproduce import find_trial, load_study_by_name

        if not args.study:
            raise ConfigError("STUDY", "--trial needs the study name or file")
        trial = find_trial(load_study_by_name(_study_name(args.study), args.storage), args.trial)
        run_id = TrialRecord.of(trial).run_id
        if not run_id:
            raise ConfigError("--trial", "trial has no recorded MLflow run", args.trial)
    out = export_run(run_id, args.out, _reading_tracking_uri(args))
    print(f"wrote PEFT adapter of run {run_id} to {out}")
    return 0


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
    cfg = load_study(
        args.study, args.overrides, args.seed
    )  # before torch, transformers and mlflow load
    from evolora.orchestrator.tracking.runlog import default_tracking_uri

    check_locations(args.tracking_uri or default_tracking_uri(), args.checkpoint_dir)
    check_experiment(args.tracking_uri or default_tracking_uri(), cfg.mlflow.experiment)
    from optuna.trial import TrialState

    from evolora.orchestrator.sweep.context import SweepContext
    from evolora.orchestrator.sweep.worker import run_sweep

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

    print("\n".join(summary_lines(cfg, study, args.study)))
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(
        t.state == TrialState.RUNNING for t in trials
    )  # the last trials of other hosts' workers
    if done < args.n_trials and running:
        print(f"{running} trial(s) still running on other workers")
    return 0 if done + running >= args.n_trials or args.timeout else 1


def _cmd_reproduce(args) -> int:
    from evolora.orchestrator.sweep.reproduce import find_trial, load_study_by_name, reproduce

    study = load_study_by_name(_study_name(args.study), args.storage)
    trial = find_trial(study, args.trial)
    rep = reproduce(study, trial, progress=not args.no_progress)
    width = max(len(r[0]) for r in rep.rows)
    print(f"trial {trial.number} of study {study.study_name}")
    print(f"{'':{width}}  {'logged':<66}  reproduced")
    for name, logged, again in rep.rows:
        print(f"{name:{width}}  {logged:<66}  {again}{'' if logged == again else '   <-- differs'}")
    print("identical" if rep.identical else "NOT identical")
    return 0 if rep.identical else 1


def _cmd_lineage(args) -> int:
    import tempfile

    from evolora.evolution.lineage import ancestry, format_ancestry, read_lineage
    from evolora.orchestrator.tracking.runlog import download_artifact, find_run

    uri = _reading_tracking_uri(args)
    run = find_run(uri, args.run_id)
    if run is None:
        raise ConfigError("RUN_ID", "no such run", args.run_id)
    genome = int(run.data.tags.get("evolora.champion_id", -1)) if args.best else args.genome
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rows = read_lineage(download_artifact(uri, args.run_id, "lineage.parquet", tmp))
        except Exception:
            raise ConfigError(
                "RUN_ID", "run has no lineage.parquet artifact", args.run_id
            ) from None
    try:
        chain = ancestry(rows, genome)
    except KeyError:
        raise ConfigError("--genome", "no such genome in this run's lineage", genome) from None
    print(f"ancestry of genome {genome} (run {args.run_id}), newest first")
    print("\n".join(format_ancestry(chain)))
    return 0


def _cmd_studies(args) -> int:
    import optuna

    from evolora.orchestrator.sweep.storage import default_storage, open_existing_storage

    storage = open_existing_storage(args.storage)
    summaries = optuna.get_all_study_summaries(storage) if storage is not None else []
    print(f"storage: {args.storage or default_storage()}")
    if not summaries:
        print("no studies")
    for s in summaries:
        best = f"{s.best_trial.value:.5f} (trial {s.best_trial.number})" if s.best_trial else "-"
        print(f"{s.study_name:30s} trials {s.n_trials:4d}  best {best}")
    return 0


def _cmd_schema(args) -> int:
    from evolora.orchestrator.study.reference import study_json_schema, study_reference

    sys.stdout.write(study_json_schema() if args.json else study_reference())
    return 0


def _cmd_terms(args) -> int:
    from evolora.fitness import describe_terms

    rows = describe_terms()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in ("name", "task", "origin")}
    print("  ".join(f"{k:{widths[k]}}" for k in widths) + "  params")
    for r in rows:
        print("  ".join(f"{r[k]:{widths[k]}}" for k in widths) + f"  {r['params'] or '-'}")
        if r["doc"]:
            print(f"{'':{widths['name']}}  {r['doc'][:110]}")
    return 0


def _cmd_migrate(args) -> int:
    from evolora.orchestrator.tracking.migrate import migrate_store
    from evolora.orchestrator.tracking.runlog import default_tracking_uri, existing_tracking_uri

    uri = existing_tracking_uri(args.tracking_uri)
    if uri is None:
        raise ConfigError("--tracking-uri", "no MLflow store there", default_tracking_uri())
    rewritten, remote = migrate_store(uri)
    for path in rewritten:
        print(f"migrated: {path}")
    for location in remote:
        print(f"not a local artifact store, left as it is: {location}", file=sys.stderr)
    print(f"{len(rewritten)} model(s) migrated")
    return 0


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
        if (
            safe._gone
        ):  # Python's own flush at exit would report the closed pipe: point the descriptor nowhere
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
            except (OSError, ValueError):
                pass


def main(argv: list[str] | None = None) -> int:
    from evolora.orchestrator.run.progress import quiet_libraries
    from evolora.orchestrator.signals import Terminated, handle_sigterm

    args = build_parser().parse_args(argv)
    quiet_libraries()
    restore = handle_sigterm()
    handler = {
        "run": _cmd_run,
        "export": _cmd_export,
        "sweep": _cmd_sweep,
        "reproduce": _cmd_reproduce,
        "studies": _cmd_studies,
        "ui": _cmd_ui,
        "lineage": _cmd_lineage,
        "terms": _cmd_terms,
        "schema": _cmd_schema,
        "migrate": _cmd_migrate,
    }.get(args.command) or plugin_commands()[args.command].run
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
