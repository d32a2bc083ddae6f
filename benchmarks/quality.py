"""`evolora bench --quality`: test quality against wall-clock time, method by method, on one machine.

Every row adapts all-MiniLM-L6-v2 to STS-B with the same data splits (validation: 10 % of sts-train drawn
by data seed 0; test: sts-dev, scored only to draw the curves and never used to choose) and runs for the same
wall-clock budget, one process after another:

* ``gradient``   the ceiling: LoRA (r 4, α 8, query+value of all six layers) trained by AdamW (lr 1e-3,
                 batch 32, 2 epochs) on the differentiable surrogate, MSE between the pair cosine of mean-pooled
                 embeddings and gold/5. Lives here only: nothing in evolora's adaptation path has a gradient.
* ``slim-evo``   what the SLIM-EVO script does: sep-CMA-ES from ``cma`` over the whole adapter, each organism
                 written into a stock peft model with ``set_peft_model_state_dict`` and scored one at a time on
                 the full model; its answer is the fittest organism seen.
* ``ga``, ``openai-es``, ``sep-cma-es``   evolora's strategies at their defaults, on the reference shape.
* ``best``       the shipped best study (``studies/stsb-best.yaml``), as shipped.
* ``xs``         the shipped LoRA-XS study (``studies/stsb-xs.yaml``: ES over r×r cores between frozen SVD
                 factors, ``lora.genome: xs``), as shipped.
* ``quickstart`` the quickstart study (``studies/quickstart.yaml``), as shipped.
* ``evotorch-pgpe``, ``evotorch-snes``, ``nevergrad-ngopt``   the peers: a general evolution library's own
                 optimiser on the ``best`` row's task (:mod:`evolora.benchmarks.peers`); EvoTorch's run as
                 evolora strategies in evolora's loop, NGOpt driving evolora's evaluator.

The test score of each row's current answer (evolora: the champion chosen on validation; gradient: the
current weights; slim-evo: the fittest organism) is sampled through the run; the time spent scoring the test
split is not counted against the budget. Each row saves its final answer as a stock PEFT adapter directory.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["ROWS", "THRESHOLDS", "run_quality"]

from evolora.benchmarks.curves import Clock, Curve
from evolora.benchmarks.gradient import gradient_row
from evolora.benchmarks.peers import ADAPTED, PEERS, peer_evolution
from evolora.benchmarks.rows import evolora_row

ROWS = ("gradient", "slim-evo", "ga", "openai-es", "sep-cma-es", "best", "xs", "quickstart", *PEERS)
THRESHOLDS = (0.5, 1.0, 2.0)  # test points (Spearman × 100) over the base model
BEST_STUDY = Path(__file__).resolve().parent.parent / "studies" / "stsb-best.yaml"
XS_STUDY = BEST_STUDY.with_name("stsb-xs.yaml")
QUICKSTART = BEST_STUDY.with_name("quickstart.yaml")
TINY = {"test_pairs": 40, "val_pairs": 32, "train_batch": 16, "pop": 4}


# ---- the data every row shares ------------------------------------------------------------------------
def study_dict(tiny: bool, out: Path) -> dict:
    """The reference task as a study: the gradient reference's LoRA shape, validation from train, sts-dev test."""
    from evolora.fitness import PACKAGED_STSB

    test = PACKAGED_STSB / "sts-dev.csv"
    if tiny:
        test = out / "sts-dev-tiny.csv"
        lines = (PACKAGED_STSB / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
        test.write_text("\n".join(lines[: TINY["test_pairs"]]) + "\n", encoding="utf-8")
    return {
        "name": "bench-quality",
        "seed": 0,
        "model": {"base": "minilm"},
        "lora": {"rank": 4, "alpha": 8, "target_modules": ["query", "value"], "layers": None},
        "data": {
            "train_path": str(PACKAGED_STSB / "sts-train.csv"),
            "dev_path": None,
            "val_fraction": 0.1,
            "test_path": str(test),
            "seed": 0,
            "rotate": True,
            "train_subset": TINY["train_batch"] if tiny else 256,
            "dev_subset": TINY["val_pairs"] if tiny else None,
        },
        "fitness": {"terms": [{"name": "stsb_spearman", "weight": 1.0}]},
        "validation": {"metric": "stsb_spearman", "every": 1},
        "evolution": {
            "generations": 10**6,
            **({"population": TINY["pop"], "tournament_size": 2} if tiny else {}),
        },
        "mlflow": {"experiment": "bench-quality"},
    }


def _config(row: str, tiny: bool, out: Path, best_study: Path, seed: int | None = None):
    cfg = _row_config(row, tiny, out, best_study)
    if seed is None or seed == cfg.seed:
        return cfg
    return cfg.model_copy(update={"seed": int(seed)})  # the trial's seed: every draw of the row


def _row_config(row: str, tiny: bool, out: Path, best_study: Path):
    from evolora.orchestrator.study.load import load_raw, parse_study

    if row in ("best", "xs", "quickstart", *PEERS):  # a peer runs on the best row's task
        study = {"xs": XS_STUDY, "quickstart": QUICKSTART}.get(row, best_study)
        raw = load_raw(study)
        ref = study_dict(tiny, out)
        data = dict(raw.get("data", {}))
        data.update({"test_path": ref["data"]["test_path"]})
        if tiny:
            data.update({"train_subset": TINY["train_batch"], "dev_subset": TINY["val_pairs"]})
            raw = {**raw, "evolution": {**raw.get("evolution", {}), "population": TINY["pop"]}}
        cfg = parse_study({**raw, "data": data}, study.parent)
        if row in ADAPTED:  # the peer as evolora's strategy, at the study's σ
            evolution = peer_evolution(row, raw.get("evolution", {}), cfg.evolution.es.sigma)
            cfg = parse_study({**raw, "data": data, "evolution": evolution}, study.parent)
        return cfg
    raw = study_dict(tiny, out)
    if row in ("openai-es", "sep-cma-es", "ga"):
        raw["evolution"]["strategy"] = row
    return parse_study(raw)


# ---- rows ---------------------------------------------------------------------------------------------
def _slim_evo_row(cfg, budget_s: float, out: Path) -> dict:
    import cma
    from peft import set_peft_model_state_dict

    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import task_spec
    from evolora.orchestrator.run.trial import prepare_torch

    prepare_torch(cfg)
    # stock peft LoRA path, full model
    task = build_task(task_spec(cfg).replace(model={"merge_weights": False, "cache": False}))
    model = task.flat.model
    term = task.terms[0][2]
    clock = Clock(budget_s)

    def score(x, data) -> float:
        set_peft_model_state_dict(model, task.flat.state_dict(np.asarray(x, np.float32)))
        return float(term(task._outputs(data)))

    curve = Curve(clock, lambda x: task.test(np.asarray(x, np.float32)))
    x0 = task.seed_genome().astype(np.float64)
    es = cma.CMAEvolutionStrategy(
        x0,
        cfg.evolution.es.sigma,
        {
            "CMA_diagonal": True,
            "popsize": cfg.evolution.population,
            "seed": cfg.seed + 1,
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
            "tolx": 0,
            "tolfun": 0,
            "tolstagnation": 10**9,
            "tolflatfitness": 10**9,
            "tolfunhist": 0,
        },
    )
    best, best_fit, best_key, gen, evals = x0, -math.inf, 0, 0, 0
    curve.maybe(0, lambda: x0)
    while gen < 1 or not clock.over():
        data = task.train_batch(gen)
        xs = es.ask()
        fits = [score(x, data) for x in xs]
        evals += len(xs)
        es.tell(xs, [-f for f in fits])
        i = int(np.argmax(fits))
        if fits[i] > best_fit:
            best, best_fit, best_key = np.array(xs[i]), fits[i], (gen, i)
        gen += 1
        curve.maybe(best_key, lambda: best)  # noqa: B023 (called now, if at all)
    curve.maybe(best_key, lambda: best, force=True)
    task.flat.save_adapter(np.asarray(best, np.float32), out / "adapter")
    return {
        "curve": curve.points,
        "generations": gen,
        "evaluations": evals,
        "seconds": round(clock.elapsed(), 1),
    }


def run_row(
    row: str,
    minutes: float,
    tiny: bool,
    out: Path,
    best_study: Path = BEST_STUDY,
    tests=(),
    budgets=(),
    seed: int | None = None,
) -> dict:
    """One row in this process: its config, its budget, its curve, its adapter in ``out / row`` (``row-s<seed>``
    for a seed other than the study's); ``budgets`` (minutes, the longest ``minutes``) are read off the curve."""
    from evolora.benchmarks.curves import at_budgets, mark_budgets

    out = Path(out)
    cfg = _config(row, tiny, out, best_study, seed)
    mark_budgets(budgets)
    row_dir = out / (row if seed is None else f"{row}-s{seed}")
    row_dir.mkdir(parents=True, exist_ok=True)
    budget = minutes * 60
    if row == "gradient":
        res = gradient_row(cfg, budget, row_dir)
    elif row == "slim-evo":
        res = _slim_evo_row(cfg, budget, row_dir)
    elif row in PEERS:
        from evolora.benchmarks.peers import peer_row

        res = peer_row(row, cfg, budget, row_dir, Clock, Curve)
    else:
        res = evolora_row(cfg, budget, row_dir)
    import torch

    from evolora.benchmarks.scoring import by_source, on_test_sets

    res["test_by_source"] = by_source(cfg, row_dir / "adapter")
    res["test_sets"] = on_test_sets(cfg, row_dir / "adapter", tests)
    curve = res.pop("curve")
    base = curve[0][1]
    final = curve[-1][1]
    reach = {}
    for th in THRESHOLDS:
        hit = next((t for t, v in curve if (v - base) * 100 >= th - 1e-9), None)
        reach[f"+{th}"] = hit
    return {
        "row": row,
        "seed": cfg.seed,
        "at": at_budgets(curve, budgets or [minutes]),
        "test_base": base,
        "test_final": final,
        "test_gain_points": (final - base) * 100,
        "seconds_to": reach,
        "budget_s": budget,
        "curve": [[t, v] for t, v in curve],
        "threads": torch.get_num_threads(),
        "strategy": cfg.evolution.strategy if row not in ("gradient", "slim-evo", *PEERS) else row,
        "adapter": str(row_dir / "adapter"),
        **res,
    }


# ---- the table ----------------------------------------------------------------------------------------
def run_quality(
    rows=ROWS,
    minutes: float = 10.0,
    tiny: bool = False,
    out: Path = Path("bench-quality"),
    threads: int | None = None,
    best_study: Path = BEST_STUDY,
    log=print,
    tests=(),
    budgets=(),
    seeds=(None,),
) -> list[dict]:
    """Each row (and seed) in its own process, one after another; returns the rows with
    ``share_of_gradient``. With ``budgets`` (minutes) each row runs for the longest and reports them all."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    minutes = max(budgets) if budgets else minutes
    results = []
    for row, seed in [(r, s) for r in rows for s in seeds]:
        log(f"{row}{'' if seed is None else f' seed {seed}'}: {minutes:g} min …")
        dst = out / (f"{row}.json" if seed is None else f"{row}-s{seed}.json")
        cmd = [
            sys.executable,
            "-m",
            "evolora.benchmarks.quality",
            "--row",
            row,
            "--minutes",
            str(minutes),
            "--out",
            str(out),
            "--best-study",
            str(best_study),
            "--result",
            str(dst),
        ]
        if tiny:
            cmd.append("--tiny")
        if threads:
            cmd += ["--threads", str(threads)]
        for t in tests:
            cmd += ["--test", str(Path(t).resolve())]
        if budgets:
            cmd += ["--budgets", ",".join(f"{b:g}" for b in budgets)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench row {row} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(dst.read_text())
        if len(seeds) > 1:  # a line per seed: the row's name says which
            res["of"], res["row"] = row, f"{row}-s{seed}"
        results.append(res)
    grad = next((r for r in results if r.get("of", r["row"]) == "gradient"), None)  # first seed's
    for r in results:
        g = grad["test_gain_points"] if grad else None
        r["share_of_gradient"] = round(r["test_gain_points"] / g, 4) if g and g > 0 else None
    return results


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="one row of evolora bench --quality (run by the bench itself)"
    )
    ap.add_argument("--row", required=True, choices=ROWS)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--best-study", type=Path, default=BEST_STUDY)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--test", action="append", default=[], type=Path)
    ap.add_argument(
        "--budgets", default="", help="minutes, comma-separated: read off this row's curve"
    )
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    budgets = [float(b) for b in a.budgets.split(",") if b]
    res = run_row(a.row, a.minutes, a.tiny, a.out, a.best_study, a.test, budgets, a.seed)
    a.result.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
