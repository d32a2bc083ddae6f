"""The ``evolora`` command line's grammar: every command with its options and help (what each command
does is :mod:`.commands`'s)."""

from __future__ import annotations

import argparse

__all__ = ["build_parser", "plugin_commands", "COMMANDS_GROUP"]

# entry points: name -> an object with add_parser(subparsers) and run(args)
COMMANDS_GROUP = "evolora.commands"


def plugin_commands() -> dict:
    """The commands installed packages declare (entry-point group ``evolora.commands``): evolora's own bench is
    one, so the command line never imports the benchmarks unless a bench command runs."""
    import sys
    from importlib.metadata import entry_points

    found = {}
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # a broken plug-in command must not take the other commands with it
            print(
                f"evolora: warning: command {ep.name!r} ({ep.value}) did not load: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
    return found


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override any config path, e.g. --set evolution.generations=5 (value parsed as YAML; repeatable)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="trial seed (overrides the study's `seed`)"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the SQLite store in ./mlruns/)",
    )


def installed_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a checkout that is not installed)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("evolora")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evolora",
        description="Evolve LoRA adapters without gradients: "
        "DEAP evolution on a frozen Hugging Face model, tracked in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"evolora {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_init,
        _add_run,
        _add_sweep,
        _add_reproduce,
        _add_export,
        _add_lineage,
        _add_studies,
        _add_terms,
        _add_schema,
        _add_ui,
        _add_migrate,
    ):
        add(sub)
    for (
        command
    ) in plugin_commands().values():  # installed commands (evolora's own bench among them)
        command.add_parser(sub)
    return parser


def _add_init(sub) -> None:
    p = sub.add_parser(
        "init",
        help="write a study file to edit, from a shipped one",
        description="Write a study file from a shipped study, comments kept, its data paths pointed at the "
        "installed package's data: quickstart (STS-B pairs on MiniLM), reward (a reward on a small LFM2's "
        "completions), pairs (the quickstart on a pairs.csv of your own, a sample written beside it), or any "
        "shipped study by name.",
    )
    p.add_argument(
        "--from",
        dest="source",
        default="quickstart",
        help="quickstart (default), reward, pairs, or a shipped study's name",
    )
    p.add_argument("--out", default="study.yaml", help="the file to write (default study.yaml)")
    p.add_argument(
        "--force", action="store_true", help="overwrite --out (and pairs.csv) if it exists"
    )


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="evolve one adapter from a study file and record it as one MLflow run",
        description="Evolve a LoRA adapter as the study file says; log config, per-generation "
        "curves, the final validation score and the adapter to MLflow. Prints the run id.",
    )
    p.add_argument("study", help="study YAML file (see studies/)")
    _common(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar; print only the run id (for scripts: RUN=$(evolora run … --quiet))",
    )
    p.add_argument(
        "--register",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help="register the champion in the MLflow Model Registry as a version of NAME (default: the "
        "study name); the alias `champion` moves to it if it beats the current one on validation",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="continue a stopped run (Ctrl-C, SIGTERM, a "
        "failing term) from its last checkpoint, in the same MLflow run; give the same study and --set "
        "values it was started with",
    )


def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="tune the evolution with an Optuna study over the study file's `search:`",
        description="Run an Optuna study: each trial samples the `search:` entries, evolves an "
        "adapter and is scored on the validation metric; one MLflow parent run per study, one child "
        "run per trial. Re-running the same command resumes the study: --n-trials is the total.",
    )
    p.add_argument("study", help="study YAML file with a `search:` section")
    _common(p)
    p.add_argument(
        "--n-trials", type=int, required=True, help="total number of trials the study should reach"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the same storage (1 torch thread each)",
    )
    p.add_argument("--storage", default=None, help=_STORAGE_HELP)
    p.add_argument(
        "--timeout", type=float, default=None, help="stop claiming new trials after S seconds"
    )
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        help="per-trial checkpoints (default: a checkpoints/ folder beside a file storage, else "
        "./mlruns/checkpoints; must be shared by all hosts when scaling out)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars; print only the best trial (number, value, params)",
    )


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="re-run a finished trial and compare with what was logged, bit for bit",
        description="Re-run a trial from the recorded params, seed, resolved config and thread count; "
        "print logged and reproduced values side by side. Exit 0 if identical, 1 otherwise.",
    )
    p.add_argument("study", help="study name, or the study YAML file (its `name`)")
    p.add_argument("--trial", default="best", help="trial number or 'best' (default)")
    p.add_argument("--storage", default=None, help=_STORAGE_HELP)
    p.add_argument("--no-progress", action="store_true")


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's, trial's or registered model's champion as a stock PEFT adapter",
        description="Write the champion adapter of a run (--run-id), of a sweep trial (STUDY "
        "--trial) or of a registered model (models:/NAME@champion, models:/NAME/VERSION) to DIR "
        "(adapter_config.json + adapter_model.safetensors), loadable by PeftModel.from_pretrained "
        "without evolora.",
    )
    p.add_argument(
        "study", nargs="?", help="study name or YAML file (with --trial), or a models:/ URI"
    )
    p.add_argument("--run-id", default=None, help="MLflow run id (printed by `evolora run`)")
    p.add_argument("--trial", default=None, help="trial number or 'best' (with STUDY)")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/)",
    )
    p.add_argument("--storage", default=None, help=_STORAGE_HELP)


def _add_lineage(sub) -> None:
    p = sub.add_parser(
        "lineage",
        help="print the ancestry of a genome of a run back to generation 0",
        description="Read the run's lineage (every birth with parents, operator, parameters and "
        "generator state; every evaluation) and print a genome's ancestry, newest first.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="MLflow run id")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--genome", type=int, help="genome id")
    who.add_argument("--best", action="store_true", help="the run's champion")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/)",
    )


def _add_studies(sub) -> None:
    p = sub.add_parser(
        "studies",
        help="list the studies in an Optuna storage",
        description="List studies with their trial counts by state and best values.",
    )
    p.add_argument("--storage", default=None, help=_STORAGE_HELP)


def _add_terms(sub) -> None:
    p = sub.add_parser(
        "terms",
        help="list every fitness term a study can name: built-in, installed plug-ins, ...",
        description="List the registered fitness terms: name, task kind (pairs or causal; batch or "
        "per example), where each comes from (built-in, an installed package's entry point in the "
        "group evolora.fitness) and its params. Loads every installed plug-in to describe it.",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def _add_schema(sub) -> None:
    p = sub.add_parser(
        "schema",
        help="print the study-file reference, generated from the schema",
        description="Print every study-file key with its type, default, bounds and description "
        "(Markdown: the docs' study-file reference page), or the JSON Schema for editors.",
    )
    p.add_argument(
        "--json", action="store_true", help="the JSON Schema instead of the Markdown reference"
    )


def _add_ui(sub) -> None:
    p = sub.add_parser(
        "ui",
        help="start the MLflow UI (and optuna-dashboard) on the project's stores",
        description="Start the MLflow UI on the tracking store (default ./mlruns/) and, when "
        "optuna-dashboard is installed (pip install 'evolora[dashboard]'), the Optuna dashboard on the "
        "Optuna storage. Ctrl-C or SIGTERM stops every server process it started.",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/)",
    )
    p.add_argument("--storage", default=None, help=_STORAGE_HELP)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the servers listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=5000, help="the MLflow UI's port (default 5000)")
    p.add_argument(
        "--dashboard-port", type=int, default=8080, help="optuna-dashboard's port (default 8080)"
    )


def _add_migrate(sub) -> None:
    p = sub.add_parser(
        "migrate",
        help="bring a store written by an earlier evolora up to date, in place",
        description="Rewrite what an earlier evolora stored under its old module names: every MLflow "
        "model whose MLmodel names the loader module fitness.serving now names evolora.fitness.serving "
        "(local artifact stores; nothing else in the file changes). Safe to run twice.",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the SQLite store in ./mlruns/)",
    )


_STORAGE_HELP = (
    "Optuna storage: a journal file path or a database URL (sqlite:///study.db, "
    "postgresql://user:pass@host/db); default $EVOLORA_STORAGE, else ./mlruns/optuna-journal.log"
)
