"""`evolora bench --reward`: a reward on a causal model's completions, evolora against what a user would pick
instead, for the same wall-clock budget on the same base, prompts, splits and reward callable.

Tasks (each a shipped study, its base, LoRA shape and splits as shipped):

* ``arithmetic``  ``studies/lfm2-arithmetic.yaml``: the exact answer to two-digit additions on ``lfm2-arith``.
* ``keyword``     ``studies/lfm2-reward.yaml``: continuations of caption openings that mention a guitar, on
                  ``lfm2-demo``, under a held-out likelihood budget.

Rows, one process each, one after another:

* ``evolora``        the shipped study, as shipped, its fitness the task's reward callable below.
* ``grpo``           TRL's ``GRPOTrainer`` through its public API on a stock peft LoRA of the study's rank, alpha
                     and targets, at TRL's defaults (group of 8 completions, β 0, learning rate 1e-6, temperature
                     1, one prompt a step at batch 8; ``--grpo-lr`` sets another rate), completions of the
                     study's length, the same reward callable;
                     ``max_steps`` far beyond the budget (the linear schedule stays at its rate) and stopped when
                     the budget is spent. Its current adapter is validated every ``GRPO_VALIDATE_EVERY`` steps and
                     the best validated one (within the study's budget) is its answer, as evolora chooses. The
                     only gradients in evolora's tree are here and in ``benchmarks/quality.py``.
* ``evotorch-snes``  EvoTorch's SNES driving evolora's evaluator on the study's genome
                     (:mod:`evolora.benchmarks.peers`).

Every row's answer is scored through time on the test split with the study's validation metric (greedy, the
reward), which chooses nothing; the time spent scoring it is not counted. Each row records its held-out
guards on test where the study has a budget (the keyword task's likelihood), its peak memory, a few samples,
and saves its answer as a stock PEFT adapter.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
from pathlib import Path

__all__ = ["TASKS", "REWARD_ROWS", "LEVELS", "run_reward", "exact_answer", "mentions_guitar"]

STUDIES = Path(__file__).resolve().parent.parent / "studies"
TASKS = {"arithmetic": STUDIES / "lfm2-arithmetic.yaml", "keyword": STUDIES / "lfm2-reward.yaml"}
REWARD_ROWS = ("evolora", "grpo", "evotorch-snes")
LEVELS = (
    0.02,
    0.05,
    0.1,
)  # test reward over the base's: the times to these are compared between rows
GRPO_VALIDATE_EVERY = 25
TINY = {"train": 16, "dev": 8, "test": 8, "pop": 4, "new_tokens": 3}


# ---- the reward callables: TRL's signature, the same object in every row ------------------------------
def _first_line(s: str) -> str:
    return (s.strip().splitlines() or [""])[0].strip()


def exact_answer(completions, answer, **kwargs) -> list[float]:
    """1 where a completion's first line, stripped, is its example's answer, else 0."""
    return [float(_first_line(c) == a.strip()) for c, a in zip(completions, answer)]


_GUITAR = re.compile("guitar", re.IGNORECASE)


def mentions_guitar(completions, **kwargs) -> list[float]:
    """1 where a completion mentions a guitar, else 0."""
    return [float(bool(_GUITAR.search(c))) for c in completions]


REWARDS = {"arithmetic": exact_answer, "keyword": mentions_guitar}


def _config(task: str, tiny: bool, row: str = "evolora"):
    """The task's study with the reward callable as its fitness and validation metric (the keyword study keeps
    its KL guard and likelihood budget); ``tiny``: the random-init lfm2-tiny, a few prompts, a small
    population, short completions (it checks the contract and measures nothing)."""
    import evolora
    from evolora.benchmarks.peers import ADAPTED, peer_evolution
    from evolora.orchestrator.study.load import load_raw, parse_study

    name = f"bench_{task}"
    evolora.register_reward(name, REWARDS[task])
    raw = load_raw(TASKS[task])
    terms = [dict(t) for t in raw["fitness"]["terms"]]
    terms[0] = {"name": name, "weight": terms[0].get("weight", 1.0)}
    raw["fitness"] = {**raw["fitness"], "terms": terms}
    raw["validation"] = {**raw["validation"], "metric": name, "params": {}}
    for section in ("search", "sweep"):  # one run, no sweep
        raw.pop(section, None)
    if tiny:
        raw["model"] = {**raw["model"], "base": "lfm2-tiny"}
        raw["data"] = {**raw["data"], "train_subset": TINY["train"], "dev_subset": TINY["dev"]}
        raw["fitness"]["max_new_tokens"] = TINY["new_tokens"]
        raw["evolution"] = {**raw["evolution"], "population": TINY["pop"]}
    cfg = parse_study(raw, TASKS[task].parent)
    if row in ADAPTED:  # the peer as evolora's strategy, at the study's σ
        raw["evolution"] = peer_evolution(row, raw["evolution"], cfg.evolution.es.sigma)
        cfg = parse_study(raw, TASKS[task].parent)
    return cfg


# ---- rows ---------------------------------------------------------------------------------------------
def _grpo_config(cfg, out: Path, lr: float | None):
    """TRL's defaults, but completions of the study's length, its seed, no logging or checkpoints, and steps
    far beyond any budget (the linear schedule stays near its rate; the budget stops the run)."""
    import torch
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out / "trl"),
        max_completion_length=cfg.fitness.max_new_tokens,
        max_steps=10**7,
        seed=cfg.seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        disable_tqdm=True,
        **({"learning_rate": lr} if lr else {}),
    )


def _grpo_row(
    cfg, task_name: str, budget_s: float, out: Path, clock_cls, curve_cls, lr: float | None = None
) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from evolora.benchmarks.peers import validated

    task = _peft_task(cfg)
    model = task.flat.model
    rows = [{"prompt": e.prompt, **e.columns()} for e in task.train]
    clock = clock_cls(budget_s)
    x0 = task.seed_genome()
    base_val = validated(task, x0)[0]
    champion = {"genome": x0.copy(), "val": base_val, "step": 0}
    curve = curve_cls(clock, task.test)
    curve.maybe(0, lambda: x0)

    class Budget(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % GRPO_VALIDATE_EVERY == 0 or clock.over():
                model.eval()
                genome = task.flat.read()
                val, admissible = validated(task, genome)
                if admissible and val > champion["val"]:
                    champion.update(genome=genome, val=val, step=state.global_step)
                model.train()
            curve.maybe(champion["step"], lambda: champion["genome"])
            control.should_training_stop = state.global_step >= 1 and clock.over()
            return control

    args = _grpo_config(cfg, out, lr)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=REWARDS[task_name],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=task.evaluator.tok,
        callbacks=[Budget()],
    )
    trainer.train()
    model.eval()
    curve.maybe(champion["step"], lambda: champion["genome"], force=True)
    task.save_adapter(champion["genome"], out / "adapter")
    return {
        "task": task,
        "answer": champion["genome"],
        "curve": curve.points,
        "steps": trainer.state.global_step,
        "completions": trainer.state.global_step * args.per_device_train_batch_size,
        "val_final": champion["val"],
        "val_base": base_val,
        "champion_step": champion["step"],
        "seconds": round(clock.elapsed(), 1),
        "trl": _trl_settings(args),
    }


def _peft_task(cfg):
    """The study's task on a stock peft LoRA of its shape, its LoRA weights trainable: what GRPO trains."""
    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import task_spec
    from evolora.orchestrator.run.trial import prepare_torch

    prepare_torch(cfg)
    task = build_task(task_spec(cfg).replace(model={"merge_weights": False, "cache": False}))
    for n, p in task.flat.model.named_parameters():
        p.requires_grad_("lora_" in n)
    return task


def _trl_settings(args) -> dict:
    import importlib.metadata

    keys = (
        "num_generations",
        "beta",
        "learning_rate",
        "temperature",
        "per_device_train_batch_size",
    )
    return {"version": importlib.metadata.version("trl"), **{k: getattr(args, k) for k in keys}}


def run_row(
    row: str,
    task_name: str,
    minutes: float,
    tiny: bool,
    out: Path,
    grpo_lr: float | None = None,
    budgets=(),
    seed: int | None = None,
) -> dict:
    """One row in this process: its curve, guards, samples, peak memory, adapter in ``out / task / row``
    (``row-s<seed>`` for a given seed); ``budgets`` (minutes, the longest ``minutes``) read off its curve."""
    import numpy as np
    import torch

    from evolora.benchmarks.curves import at_budgets, mark_budgets

    cfg = _config(task_name, tiny, row)
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": int(seed)})  # the trial's seed: every draw of the row
    mark_budgets(budgets)
    row_dir = Path(out) / task_name / (row if seed is None else f"{row}-s{seed}")
    row_dir.mkdir(parents=True, exist_ok=True)
    budget = minutes * 60
    res, task, genome = _run(row, cfg, task_name, budget, row_dir, grpo_lr)
    genome = np.asarray(genome, np.float32)
    curve = res.pop("curve")
    base, final = curve[0][1], curve[-1][1]
    guards = task.test_guards(genome) if cfg.validation.budget else {}
    base_guards = task.test_guards(task.seed_genome()) if guards else {}
    return {
        "row": row,
        "task": task_name,
        "seed": cfg.seed,
        "at": at_budgets(curve, budgets or [minutes]),
        "metric": cfg.validation.metric,
        "test_base": base,
        "test_final": final,
        "test_gain": final - base,
        "seconds_to": _seconds_to(curve),
        "budget_s": budget,
        "curve": [[t, v] for t, v in curve],
        "test_guards": guards,
        "test_guards_base": base_guards,
        "samples": task.samples(genome)[:4],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "adapter": str(row_dir / "adapter"),
        **res,
    }


def _run(row: str, cfg, task_name: str, budget: float, row_dir: Path, grpo_lr):
    """The row's run: its results, its task and its answer (a genome)."""
    from evolora.benchmarks.curves import Clock, Curve
    from evolora.benchmarks.scoring import _task_and_genome

    if row == "grpo":
        res = _grpo_row(cfg, task_name, budget, row_dir, Clock, Curve, grpo_lr)
        return res, res.pop("task"), res.pop("answer")
    if row == "evolora":
        from evolora.benchmarks.rows import evolora_row

        res = evolora_row(cfg, budget, row_dir)
    else:
        from evolora.benchmarks.peers import peer_row

        res = peer_row(row, cfg, budget, row_dir, Clock, Curve)
    task, genome = _task_and_genome(cfg, row_dir / "adapter")
    return res, task, genome


def _seconds_to(curve) -> dict:
    """When the curve first reached each level over its base (None: never)."""
    base = curve[0][1]
    return {f"+{lv}": next((t for t, v in curve if v - base >= lv - 1e-9), None) for lv in LEVELS}


# ---- the table ----------------------------------------------------------------------------------------
def run_reward(
    tasks=tuple(TASKS),
    rows=REWARD_ROWS,
    minutes: float = 5.0,
    tiny: bool = False,
    out: Path = Path("bench-reward"),
    threads: int | None = None,
    log=print,
    grpo_lr: float | None = None,
    budgets=(),
    seeds=(None,),
) -> list[dict]:
    """Each (task, row, seed) in its own process, one after another; each row gets ``vs_evolora``: its time
    to each level as a multiple of evolora's on the same task (the same seed's). With ``budgets`` (minutes)
    each row runs for the longest and reports them all."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    minutes = max(budgets) if budgets else minutes
    results = []
    for task, row, seed in [(t, r, s) for t in tasks for r in rows for s in seeds]:
        log(f"{task} / {row}{'' if seed is None else f' seed {seed}'}: {minutes:g} min …")
        name = row if seed is None else f"{row}-s{seed}"
        dst = out / f"{task}-{name}.json"
        cmd = [sys.executable, "-m", "evolora.benchmarks.reward", "--row", row, "--task", task]
        cmd += ["--minutes", str(minutes), "--out", str(out), "--result", str(dst)]
        cmd += ["--tiny"] if tiny else []
        cmd += ["--threads", str(threads)] if threads else []
        cmd += ["--grpo-lr", str(grpo_lr)] if grpo_lr else []
        cmd += ["--budgets", ",".join(f"{b:g}" for b in budgets)] if budgets else []
        cmd += ["--seed", str(seed)] if seed is not None else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench row {task}/{row} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(dst.read_text()))
    for r in results:
        same = [e for e in results if e["task"] == r["task"] and e["row"] == "evolora"]
        ref = next((e for e in same if e["seed"] == r["seed"]), same[0] if same else None)
        r["vs_evolora"] = {
            k: (round(t / ref["seconds_to"][k], 2) if t and ref and ref["seconds_to"][k] else None)
            for k, t in r["seconds_to"].items()
        }
    return results


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="one row of evolora bench --reward (run by the bench)")
    ap.add_argument("--row", required=True, choices=REWARD_ROWS)
    ap.add_argument("--task", required=True, choices=tuple(TASKS))
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--grpo-lr", type=float, default=None)
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
    res = run_row(a.row, a.task, a.minutes, a.tiny, a.out, a.grpo_lr, budgets, a.seed)
    a.result.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
