"""The ``evolora`` command line."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from evolution.errors import ConfigError, EvoloraError  # noqa: E402

__all__ = ["main", "build_parser"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override any config path, e.g. --set evolution.generations=5 (value parsed as YAML; repeatable)")
    p.add_argument("--seed", type=int, default=None, help="trial seed (overrides the study's `seed`)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the SQLite store in ./mlruns/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evolora", description="Evolve LoRA adapters without gradients: "
                                     "DEAP evolution on a frozen Hugging Face model, tracked in MLflow.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="evolve one adapter from a study file and record it as one MLflow run",
                       description="Evolve a LoRA adapter as the study file says; log config, per-generation "
                       "curves, the final validation score and the adapter to MLflow. Prints the run id.")
    p.add_argument("study", help="study YAML file (see studies/)")
    _common(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser("export", help="write a run's best genome as a stock PEFT adapter directory",
                       description="Write the champion adapter of a run to DIR (adapter_config.json + "
                       "adapter_model.safetensors), loadable by PeftModel.from_pretrained without evolora.")
    p.add_argument("--run-id", required=True, help="MLflow run id (printed by `evolora run`)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: ./mlruns/)")
    return parser


def _cmd_run(args) -> int:
    from .config import load_study
    from .runner import run_trial

    cfg = load_study(args.study, args.overrides, args.seed)
    outcome = run_trial(cfg, tracking_uri=args.tracking_uri, progress=not args.no_progress)
    r = outcome.result
    print(f"run_id: {outcome.run_id}")
    print(f"validation ({cfg.validation.metric}): base {r.base_val:.5f} -> champion {r.champion_val:.5f} "
          f"(gain {r.champion_val - r.base_val:+.5f}, champion from generation {r.champion_gen})")
    print(f"export: evolora export --run-id {outcome.run_id} --out adapters/{cfg.name}")
    return 0


def _cmd_export(args) -> int:
    from .export import export_run
    from .tracking import default_tracking_uri

    out = export_run(args.run_id, args.out, args.tracking_uri or default_tracking_uri())
    print(f"wrote PEFT adapter to {out}")
    return 0


def _quiet_libraries() -> None:
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would bury our own output
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    handler = {"run": _cmd_run, "export": _cmd_export}[args.command]
    try:
        return handler(args)
    except ConfigError as e:
        print(f"evolora: error: {e}", file=sys.stderr)
        return 2
    except EvoloraError as e:
        print(f"evolora: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("evolora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
