"""The ``evolora bench`` command as the command line discovers it (entry-point group ``evolora.commands``): its
grammar here, light to import; the benchmarks themselves load only when the command runs."""

from __future__ import annotations

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure population-evaluation throughput of every engine path",
        description="Score one population on one batch through the base-model bound, a naive stock-peft "
        "loop and each evolora path (full, layer-blocks, cached-1, cached-2, batched, per-pair), "
        "alternating, on MiniLM and a "
        "tiny LFM2; print median evals/s, ratios, non-evaluation overhead share, threads, peak RSS.",
    )
    p.add_argument(
        "--models", default="minilm,lfm2-tiny", help="comma-separated: minilm, lfm2-tiny"
    )
    p.add_argument(
        "--population",
        type=int,
        default=None,
        help="genomes scored per round (default 8; the actors "
        "table: its ES population, default 32)",
    )
    p.add_argument("--batch", type=int, default=128, help="sentences per evaluation batch")
    p.add_argument(
        "--repeats", type=int, default=3, help="alternating rounds (the median is reported)"
    )
    p.add_argument(
        "--batched-chunk", type=int, default=8, help="genomes per forward on the batched path"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="print (or write to PATH) the results as JSON instead of a table",
    )
    _add_quality(p)
    _add_reward(p)
    _add_actors(p)


def _add_budgets(q) -> None:
    """``--budgets`` and ``--seeds``: one run per row and seed, reported at several budgets."""
    q.add_argument(
        "--budgets",
        default=None,
        metavar="MIN,MIN,…",
        help="report every row at each of these budgets (minutes), read off one run of the longest "
        "(e.g. 2,8,30; replaces --minutes)",
    )
    q.add_argument(
        "--seeds",
        default=None,
        metavar="S,S,…",
        help="run every row once per seed (the study's seed otherwise); the table gives the gain at "
        "each budget as mean ± sd over them",
    )


def _add_quality(p) -> None:
    """``--quality``: test quality against wall-clock time, method by method."""
    q = p.add_argument_group(
        "quality (--quality): test quality against wall-clock time, method by method"
    )
    q.add_argument(
        "--quality",
        action="store_true",
        help="run the quality table instead of the speed table: "
        "gradient LoRA (the ceiling), slim-evo, evolora's strategies and shipped studies, and the peers "
        "(EvoTorch's PGPE and SNES, Nevergrad's NGOpt on the best study's task), each for --minutes, one "
        "process after another; test = sts-dev, chosen by nothing",
    )
    q.add_argument(
        "--rows",
        default=None,
        help="comma-separated rows to run (default: every row: gradient, "
        "slim-evo, ga, openai-es, sep-cma-es, best, xs, quickstart, evotorch-pgpe, evotorch-snes, "
        "nevergrad-ngopt)",
    )
    q.add_argument(
        "--test",
        action="append",
        default=None,
        metavar="FILE",
        help="a further test set (any data "
        "format the study files read; repeatable): each row's final adapter is scored on it once, beside "
        "sts-dev, and the table says where each row leads and trails",
    )
    q.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="wall-clock budget per row (default 10; --reward: 5)",
    )
    _add_budgets(q)
    q.add_argument(
        "--out",
        default=None,
        help="directory for row results, adapters and the PNG (default bench-quality; --reward: bench-reward)",
    )
    q.add_argument(
        "--best-study",
        default=None,
        help="the study of the `best` row (default studies/stsb-best.yaml)",
    )
    q.add_argument(
        "--tiny",
        action="store_true",
        help="tiny data and budget: checks the contract, measures nothing",
    )


def _add_reward(p) -> None:
    """``--reward``: a reward on completions, evolora against TRL's GRPO and EvoTorch's SNES."""
    r = p.add_argument_group(
        "reward (--reward): a reward on a causal model's completions, evolora against TRL's GRPO and "
        "EvoTorch's SNES at equal wall clock (also takes --rows, --minutes, --out, --tiny, --threads, --json)"
    )
    r.add_argument(
        "--reward",
        action="store_true",
        help="run the reward table instead: each task's shipped study (evolora), TRL's GRPOTrainer on a "
        "peft LoRA of the same shape at TRL's defaults (grpo), EvoTorch's SNES on evolora's evaluator "
        "(evotorch-snes), the same reward callable, each for --minutes (default here 5), one process after "
        "another; test reward through time (the test chooses nothing)",
    )
    r.add_argument(
        "--tasks",
        default="arithmetic,keyword",
        help="comma-separated: arithmetic (studies/lfm2-arithmetic.yaml), keyword (studies/lfm2-reward.yaml)",
    )
    r.add_argument(
        "--grpo-lr",
        type=float,
        default=None,
        help="the grpo row's learning rate (default: TRL's, 1e-6)",
    )


def _add_actors(p) -> None:
    """``--actors``: one evolution's generation time on Ray actors against one process."""
    a = p.add_argument_group(
        "actors (--actors): one evolution's generation time on Ray actors against one process"
    )
    a.add_argument(
        "--actors",
        default=None,
        metavar="N,N",
        help="run the actors table instead: the stsb-best task "
        "at --population (default 32) in one process and on each number of local Ray actors, a generation "
        "each in turn; median generation time, its ratio, bytes sent per genome (also rank 16 and a GA)",
    )
    a.add_argument(
        "--generations", type=int, default=6, help="generations per row of the actors table"
    )


def run(args) -> int:
    from .commands import bench, bench_actors, bench_quality, bench_reward

    if args.actors is not None:
        return bench_actors(args)
    if args.reward:
        return bench_reward(args)
    return bench_quality(args) if args.quality else bench(args)
