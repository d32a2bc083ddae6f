"""The ``evolora bench`` commands: their arguments checked (exit 2 on a bad one), the benchmark run, its table
or JSON printed. The CLI imports this module only when a bench command runs."""

from __future__ import annotations

import sys
from pathlib import Path

from evolora.benchmarks.bench import format_table, main_json, run_bench
from evolora.benchmarks.quality import BEST_STUDY, run_quality
from evolora.benchmarks.quality import ROWS as QUALITY_ROWS
from evolora.benchmarks.quality_report import format_quality, plot_quality, time_ratios
from evolora.evolution.errors import ConfigError

__all__ = ["bench", "bench_quality", "bench_reward", "bench_actors", "MODELS"]

MODELS = ("minilm", "lfm2-tiny")  # the models `evolora bench` measures


def bench(args) -> int:
    """``evolora bench``: throughput of every engine path, side by side in one process."""
    import torch

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ConfigError("--models", f"choose from {', '.join(MODELS)}", args.models)
    args.population = 8 if args.population is None else args.population
    for name in ("population", "batch", "repeats", "batched_chunk"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}", "must be ≥ 1", getattr(args, name))
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    rows = run_bench(models, args.population, args.batch, args.repeats, args.batched_chunk, log=log)
    if args.json:
        main_json(rows, None if args.json == "-" else args.json)
    else:
        print(format_table(rows))
    return 0


def bench_quality(args) -> int:
    """``evolora bench --quality``: evolora's strategies and studies against gradient LoRA, test gain through time."""
    rows = _choices("--rows", args.rows, QUALITY_ROWS)
    args.minutes = 10.0 if args.minutes is None else args.minutes
    args.out = args.out or "bench-quality"
    if not args.minutes > 0:
        raise ConfigError("--minutes", "must be > 0", args.minutes)
    best = Path(args.best_study) if args.best_study else BEST_STUDY
    if "best" in rows and not best.is_file():
        raise ConfigError("--best-study", "study file not found", str(best))
    tests = [Path(t) for t in args.test or ()]
    for t in tests:
        if not t.is_file():
            raise ConfigError("--test", "test file not found", str(t))
    budgets, seeds = _budgets_and_seeds(args)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    results = run_quality(
        rows,
        args.minutes,
        args.tiny,
        Path(args.out),
        args.threads,
        best,
        log=log,
        tests=tests,
        budgets=budgets,
        seeds=seeds,
    )
    png = plot_quality(results, Path(args.out) / "quality.png")
    ratios = time_ratios(results)
    # each row's time to +0.5 / +1.0 and its ratios to the slowest peer and the gradient
    for r in results:
        r["time_to"] = {key: per_row[r["row"]] for key, per_row in ratios.items()}
    return _report(args, results, format_quality, png)


def _report(args, results: list[dict], fmt, png: Path) -> int:
    """The table (or ``--json``) of a bench and where its picture is."""
    if args.json:
        main_json(results, None if args.json == "-" else args.json)
    else:
        print(fmt(results))
        print(f"curves: {png}")
    return 0


def _budgets_and_seeds(args) -> tuple[list[float], list]:
    """``--budgets`` (minutes, sorted) and ``--seeds`` (``[None]``: the study's seed), checked."""
    budgets = _numbers("--budgets", args.budgets, float)
    seeds = _numbers("--seeds", args.seeds, int) or [None]
    if any(b <= 0 for b in budgets):
        raise ConfigError("--budgets", "every budget must be > 0 minutes", args.budgets)
    if len(set(seeds)) != len(seeds):
        raise ConfigError("--seeds", "seeds must differ", args.seeds)
    return sorted(set(budgets)), seeds


def _numbers(flag: str, value: str | None, kind) -> list:
    """A comma-separated list of numbers (empty when the flag is not given); ConfigError names a bad one."""
    try:
        return [kind(v) for v in (value or "").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(flag, f"a comma-separated list of {kind.__name__}s", value) from None


def _choices(flag: str, value: str | None, allowed) -> list[str]:
    chosen = [r.strip() for r in (value or ",".join(allowed)).split(",") if r.strip()]
    if not chosen or any(r not in allowed for r in chosen):
        raise ConfigError(flag, f"choose from {', '.join(allowed)}", value)
    return chosen


def bench_reward(args) -> int:
    """``evolora bench --reward``: evolora's reward studies against TRL's GRPO and EvoTorch's SNES."""
    from evolora.benchmarks.reward import REWARD_ROWS, TASKS, run_reward
    from evolora.benchmarks.reward_report import format_reward, plot_reward

    rows = _choices("--rows", args.rows, REWARD_ROWS)
    tasks = _choices("--tasks", args.tasks, tuple(TASKS))
    minutes = 5.0 if args.minutes is None else args.minutes
    if not minutes > 0:
        raise ConfigError("--minutes", "must be > 0", minutes)
    out = Path(args.out or "bench-reward")
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    if args.grpo_lr is not None and not args.grpo_lr > 0:
        raise ConfigError("--grpo-lr", "must be > 0", args.grpo_lr)
    budgets, seeds = _budgets_and_seeds(args)
    results = run_reward(
        tasks,
        rows,
        minutes,
        args.tiny,
        out,
        args.threads,
        log=log,
        grpo_lr=args.grpo_lr,
        budgets=budgets,
        seeds=seeds,
    )
    return _report(args, results, format_reward, plot_reward(results, out / "reward.png"))


def bench_actors(args) -> int:
    """``evolora bench --actors 1,2``: generation time on Ray actors against one process, bytes per genome."""
    from evolora.benchmarks.actors import format_actors, run_actors

    try:
        actors = [int(a) for a in args.actors.split(",") if a.strip()]
    except ValueError:
        actors = []
    if not actors or any(a < 1 for a in actors):
        raise ConfigError("--actors", "comma-separated actor counts ≥ 1", args.actors)
    if args.generations < 3:
        raise ConfigError(
            "--generations",
            "must be ≥ 3 (generation 0 and the last are not timed)",
            args.generations,
        )
    population = 32 if args.population is None else args.population
    if population < 2:
        raise ConfigError("--population", "must be ≥ 2", population)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    rows = run_actors(actors, population, args.generations, args.threads or 2, args.tiny, log=log)
    if args.json:
        main_json(rows, None if args.json == "-" else args.json)
    else:
        print(format_actors(rows))
    return 0
