"""The commands that read what runs and sweeps stored, or what evolora knows: export, reproduce, lineage,
studies, terms, schema, migrate. Each names the store it reads and creates nothing there."""

from __future__ import annotations

import json
import sys

from evolora.evolution.errors import ConfigError

__all__ = [
    "cmd_export",
    "cmd_reproduce",
    "cmd_lineage",
    "cmd_studies",
    "cmd_schema",
    "cmd_terms",
    "cmd_migrate",
    "reading_tracking_uri",
]


def study_name(arg: str) -> str:
    if arg.endswith((".yaml", ".yml")):
        from evolora.orchestrator.study.load import load_study

        return load_study(arg).name
    return arg


def reading_tracking_uri(args) -> str:
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


def cmd_export(args) -> int:
    from evolora.orchestrator.run.export import export_run

    run_id = args.run_id
    if args.study and args.study.startswith("models:/"):
        from evolora.orchestrator.run.export import export_model

        if run_id is not None or args.trial is not None:
            raise ConfigError("--run-id/--trial", "give a models:/ URI alone")
        out = export_model(args.study, args.out, reading_tracking_uri(args))
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
        trial = find_trial(load_study_by_name(study_name(args.study), args.storage), args.trial)
        run_id = TrialRecord.of(trial).run_id
        if not run_id:
            raise ConfigError("--trial", "trial has no recorded MLflow run", args.trial)
    out = export_run(run_id, args.out, reading_tracking_uri(args))
    print(f"wrote PEFT adapter of run {run_id} to {out}")
    return 0


def cmd_reproduce(args) -> int:
    from evolora.orchestrator.sweep.reproduce import find_trial, load_study_by_name, reproduce_trial

    study = load_study_by_name(study_name(args.study), args.storage)
    trial = find_trial(study, args.trial)
    rep = reproduce_trial(study, trial, progress=not args.no_progress)
    width = max(len(r[0]) for r in rep.rows)
    print(f"trial {trial.number} of study {study.study_name}")
    print(f"{'':{width}}  {'logged':<66}  reproduced")
    for name, logged, again in rep.rows:
        print(f"{name:{width}}  {logged:<66}  {again}{'' if logged == again else '   <-- differs'}")
    print("identical" if rep.identical else "NOT identical")
    return 0 if rep.identical else 1


def cmd_lineage(args) -> int:
    import tempfile

    from evolora.evolution.lineage import ancestry, format_ancestry, read_lineage
    from evolora.orchestrator.tracking.runlog import download_artifact, find_run

    uri = reading_tracking_uri(args)
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


def cmd_studies(args) -> int:
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


def cmd_schema(args) -> int:
    from evolora.orchestrator.study.reference import study_json_schema, study_reference

    sys.stdout.write(study_json_schema() if args.json else study_reference())
    return 0


def cmd_terms(args) -> int:
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


def cmd_migrate(args) -> int:
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
