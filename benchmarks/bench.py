"""`evolora bench`: population-evaluation throughput, measured side by side in one process.

For each model (MiniLM on STS-B pairs, the tiny LFM2 on news sentences) and each path, the same population
is scored on the same batch, the paths alternating round by round so that machine noise hits all alike:

* ``bound``    the base model alone, one (padded, stock transformers) forward per genome: what LoRA would cost
  if it cost nothing on the padded forward (the padding-free paths can pass it)
* ``naive``    stock peft, what a user would write: ``set_peft_model_state_dict`` then forward, per genome
* ``full``     evolora, LoRA on every layer, flat aliased buffer, full forward per genome
* ``cached-1`` / ``cached-2``  LoRA on the top 1 / 2 layers, frozen-trunk cache
* ``padded``   (MiniLM) as ``cached-2``, with the padded forward instead of the padding-free one every other
  encoder path runs (``model.packed: false``; ``fitness.packed``): what packing buys, side by side
* ``batched``  LoRA on every layer, all genomes of a chunk in one forward (bmm deltas; the GPU path)
* ``per-pair`` / ``per-pair-memo``  (MiniLM) as ``cached-2``, but each antithetic pair of the population on a
  batch of its own, new every round (``evolution.es.batches: per_pair``; the same number of pair evaluations):
  the per-batch trunk cache never hits / the trunk memo keeps every train sentence's trunk (filled before
  timing: one trunk pass over the train split per run, not counted)
* ``layer-blocks``  LoRA on every layer, scored as an ES with ``evolution.es.blocks: layer`` scores it: each round
  a new mean, and the population differs from it only in one layer's genes (the next layer each round), so the
  trunk runs the layers below it once with the mean's adapter (the shared prefix) and each genome the rest

For the causal model, greedy generation too (16 prompts × 16 new tokens per genome; ``tok/s`` counts that
budget): ``gen-bound`` the base model's own batched cached generation, ``gen-naive`` stock peft's
``set_peft_model_state_dict`` then ``model.generate`` prompt by prompt, ``gen-one-by-one`` evolora's
merged genome with ``model.generate`` prompt by prompt, ``gen-batched`` evolora's path (prompts left-padded
into one batch, decoded with the model's cache), ``gen-genomes`` the batched population path (all genomes of
a chunk decoded together through per-genome deltas; unlike ``batched`` it pays on a CPU too).

Plus the share of a generation's wall time that is not model evaluation (selection, variation, hall of
fame, statistics, lineage events, tracking), measured on a GA generation at population 32 with 36,864-gene
genomes, combined with each path's measured evaluation time.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from evolora.benchmarks.engines import Bound, LayerBlocks, Naive, PerPair
from evolora.evolution import Evolution, GAParams, LoopParams, Observer
from evolora.fitness import PACKAGED_STSB, TaskSpec, build_task

__all__ = ["run_bench", "format_table"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _specs(model: str, batch: int) -> tuple[TaskSpec, list[tuple[str, dict]]]:
    """The model's task and its evaluation paths, each as the sections' keys it changes."""
    data = dict(
        train_path=str(PACKAGED_STSB / "sts-train.csv"),
        dev_path=str(PACKAGED_STSB / "sts-dev.csv"),
        dev_subset=8,
        batch_size=batch,
    )
    if model == "minilm":
        base = TaskSpec(
            model=dict(base="minilm", kind="encoder"),
            lora=dict(rank=4, alpha=8.0, target_modules=("query", "value")),
            data=dict(data, train_subset=batch // 2),
        )
    else:
        base = TaskSpec(
            model=dict(base="lfm2-tiny", kind="causal"),
            lora=dict(
                rank=4, alpha=8.0, target_modules=("q_proj", "v_proj", "in_proj", "out_proj")
            ),
            data=dict(data, train_genre="main-news", dev_genre="main-news", train_subset=batch),
            fitness=dict(terms=(("likelihood", 1.0),)),
            validation="likelihood",
        )
    n = 6
    paths = [
        ("full", dict(lora=dict(layers=None), model=dict(cache=False))),
        ("layer-blocks", dict(lora=dict(layers=None), model=dict(cache=True))),
        ("cached-1", dict(lora=dict(layers=(n - 1,)), model=dict(cache=True))),
        ("cached-2", dict(lora=dict(layers=(n - 2, n - 1)), model=dict(cache=True))),
        ("batched", dict(lora=dict(layers=None), model=dict(cache=False))),
    ]
    if model == "minilm":
        top = dict(layers=(n - 2, n - 1))
        paths += [
            ("padded", dict(lora=top, model=dict(cache=True, packed=False))),
            (
                "per-pair",
                dict(lora=top, model=dict(cache=True, trunk_memo=False), data=dict(rotate=True)),
            ),
            (
                "per-pair-memo",
                dict(lora=top, model=dict(cache=True, trunk_memo=True), data=dict(rotate=True)),
            ),
        ]
    return base, paths


GEN_PROMPTS, GEN_TOKENS = 16, 16


def _generation_spec() -> TaskSpec:
    """The tiny LFM2 on three-word caption prompts: the generation paths' task."""
    return TaskSpec(
        model=dict(base="lfm2-tiny", kind="causal"),
        lora=dict(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj", "in_proj", "out_proj")),
        data=dict(
            train_path=str(PACKAGED_STSB / "sts-train.csv"),
            dev_path=str(PACKAGED_STSB / "sts-dev.csv"),
            train_genre="main-captions",
            dev_genre="main-captions",
            prompt_words=3,
            train_subset=GEN_PROMPTS,
            dev_subset=8,
            batch_size=GEN_PROMPTS,
        ),
        fitness=dict(max_new_tokens=GEN_TOKENS, terms=(("likelihood", 1.0),)),
        validation="likelihood",
    )


def _generation_jobs(population: int, rng: np.random.Generator, chunk: int = 8) -> dict:
    """The five generation paths on the tiny LFM2, each over the same genomes and prompts."""
    from peft import set_peft_model_state_dict

    spec = _generation_spec()
    ours, stock = build_task(spec), build_task(spec.replace(model={"merge_weights": False}))
    together = build_task(spec.replace(model={"genomes_per_forward": chunk}))
    data, stock_data = ours.train_batch(0), stock.train_batch(0)
    genomes = [
        (ours.seed_genome() + rng.normal(0, 0.02, ours.layout.size)).astype(np.float32)
        for _ in range(population)
    ]

    def bound():
        with ours.flat.base_only():
            for _ in genomes:
                ours.evaluator.generate(data, GEN_TOKENS)

    def naive():
        for g in genomes:
            set_peft_model_state_dict(stock.flat.model, stock.flat.state_dict(g))
            stock.evaluator.generate_one_by_one(stock_data, GEN_TOKENS)

    def ours_with(method):
        def job():
            for g in genomes:
                ours.flat.write(g)
                method(data, GEN_TOKENS)

        return job

    def genomes_together():
        for i in range(0, len(genomes), chunk):
            together.evaluator.generate_population(
                data, GEN_TOKENS, together._deltas, together._stack(genomes[i : i + chunk])
            )

    return {
        "gen-bound": bound,
        "gen-naive": naive,
        "gen-one-by-one": ours_with(ours.evaluator.generate_one_by_one),
        "gen-batched": ours_with(ours.evaluator.generate),
        "gen-genomes": genomes_together,
    }, ours.layout.size


def _measure(jobs: dict, n: int, repeats: int) -> dict[str, list[float]]:
    """``jobs``: name → callable scoring its population of ``n`` genomes. Returns evals/s per round."""
    rates: dict[str, list[float]] = {k: [] for k in jobs}
    for job in jobs.values():  # warm-up: trunk caches, allocator, lazy inits
        job()
    for _ in range(repeats):
        for name, job in jobs.items():  # alternate paths within each round
            t0 = time.perf_counter()
            job()
            rates[name].append(n / (time.perf_counter() - t0))
    return rates


class _Overhead(Observer):
    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_generation(self, row: dict) -> None:
        self.marks.append(time.perf_counter())


def _overhead_seconds(population: int = 32, genes: int = 36_864, generations: int = 6) -> float:
    """Non-evaluation seconds per generation of the real loop (GA operators, selection, hall of fame,
    statistics, lineage events) with the MLflow observer attached, on a constant-time evaluator."""
    from evolora.orchestrator.tracking.runlog import MlflowTracker

    evals = []

    def evaluate(gs, gen):
        t0 = time.perf_counter()
        out = [(float(np.asarray(g[:64]).sum()), {"t": 0.0}) for g in gs]
        evals.append(time.perf_counter() - t0)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        tracker = MlflowTracker(
            f"sqlite:///{tmp}/m.db", "bench", "overhead", {"bench": 1}, flush_every=5
        )
        marks = _Overhead()
        loop = Evolution(
            LoopParams(generations=generations, validate_every=10**6),
            GAParams(population=population),
            np.zeros(genes, np.float32),
            evaluate,
            lambda g: 0.0,
            seed=0,
            observers=[tracker, marks],
        )
        t0 = time.perf_counter()
        loop.run()
        tracker.finish()
        walls = np.diff([t0, *marks.marks])[1:]  # skip generation 0 (validation, init)
    return float(np.median(walls) - np.median(evals[1:]))


def run_bench(
    models=("minilm", "lfm2-tiny"),
    population: int = 16,
    batch: int = 64,
    repeats: int = 5,
    batched_chunk: int = 8,
    log=print,
) -> list[dict]:
    torch.manual_seed(0)
    overhead_s = _overhead_seconds()
    log(
        "non-evaluation time per generation (pop 32, 36,864 genes, with tracking): "
        f"{overhead_s * 1e3:.1f} ms"
    )
    results = []
    for model in models:
        tasks, jobs, rng = _engine_jobs(model, population, batch, repeats, batched_chunk)
        rates = _measure(jobs, population, repeats)
        results += _engine_rows(model, rates, tasks, overhead_s, population, batch)
        if model == "lfm2-tiny":
            gen_jobs, genes = _generation_jobs(population, rng, batched_chunk)
            rates = _measure(gen_jobs, population, repeats)
            results += _generation_rows(model, rates, genes, population, batch)
        log(f"{model}: done")
    return results


def _engine_jobs(model: str, population: int, batch: int, repeats: int, batched_chunk: int):
    """Every evaluation path's task and job on one model, over the same genomes: (tasks, jobs, rng)."""
    base, paths = _specs(model, batch)
    tasks = {
        name: build_task(
            base.replace(
                **{
                    **kw,
                    "model": {
                        **kw["model"],
                        "genomes_per_forward": batched_chunk if name == "batched" else 1,
                    },
                }
            )
        )
        for name, kw in paths
    }
    naive_task = build_task(  # stock peft
        base.replace(
            lora={"layers": None}, model={"cache": False, "merge_weights": False, "packed": False}
        )
    )
    rng = np.random.default_rng(1)
    genomes = {
        name: [
            (t.seed_genome() + rng.normal(0, 0.02, t.layout.size)).astype(np.float32)
            for _ in range(population)
        ]
        for name, t in tasks.items()
    }
    jobs = {
        "bound": partial(Bound(tasks["full"]), genomes["full"]),
        "naive": partial(Naive(naive_task), genomes["full"]),
    }
    for name, t in tasks.items():
        if name.startswith("per-pair"):
            jobs[name] = PerPair(t, genomes[name])
        elif name == "layer-blocks":
            jobs[name] = LayerBlocks(t, repeats + 1, population, rng)
        else:
            jobs[name] = partial(t.evaluate, genomes[name], 0)
    return tasks, jobs, rng


def _row(model: str, name: str, r: list[float], bound: float, naive: float, **more) -> dict:
    med = statistics.median(r)
    return {
        "model": model,
        "path": name,
        "evals_per_s": round(med, 3),
        "min": round(min(r), 3),
        "max": round(max(r), 3),
        "ratio_to_bound": round(med / bound, 3),
        "ratio_to_naive": round(med / naive, 3),
        **more,
    }


def _engine_rows(model, rates, tasks, overhead_s, population, batch) -> list[dict]:
    bound, naive = statistics.median(rates["bound"]), statistics.median(rates["naive"])
    rows = []
    for name, r in rates.items():
        engine = name not in ("bound", "naive")
        eval_s = 32 / statistics.median(r)  # a generation of 32 genomes on this path
        rows.append(
            _row(
                model,
                name,
                r,
                bound,
                naive,
                overhead_share=round(overhead_s / (overhead_s + eval_s), 4) if engine else None,
                threads=torch.get_num_threads(),
                peak_rss_mb=round(_peak_rss_mb(), 1),
                genome_size=tasks["full" if not engine else name].layout.size,
                population=population,
                batch=batch,
            )
        )
    return rows


def _generation_rows(model, rates, genes, population, batch) -> list[dict]:
    bound, naive = statistics.median(rates["gen-bound"]), statistics.median(rates["gen-naive"])
    return [
        _row(
            model,
            name,
            r,
            bound,
            naive,
            overhead_share=None,
            tokens_per_s=round(statistics.median(r) * GEN_PROMPTS * GEN_TOKENS, 1),
            threads=torch.get_num_threads(),
            peak_rss_mb=round(_peak_rss_mb(), 1),
            genome_size=genes,
            population=population,
            batch=batch,
        )
        for name, r in rates.items()
    ]


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'model':10s} {'path':14s} {'genes':>7s} {'evals/s':>9s} {'min–max':>15s} {'×bound':>7s} {'×naive':>7s} "
        f"{'overhead':>9s} {'tok/s':>8s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ov = f"{100 * r['overhead_share']:.2f}%" if r["overhead_share"] is not None else "-"
        tok = f"{r['tokens_per_s']:.0f}" if r.get("tokens_per_s") is not None else "-"
        lines.append(
            f"{r['model']:10s} {r['path']:14s} {r['genome_size']:7d} {r['evals_per_s']:9.2f} "
            f"{r['min']:7.2f}–{r['max']:<7.2f} {r['ratio_to_bound']:7.2f} {r['ratio_to_naive']:7.2f} {ov:>9s} {tok:>8s}"
        )
    r0 = rows[0]
    lines.append(
        f"population {r0['population']}, batch {r0['batch']} (sentences), torch threads {r0['threads']}, "
        f"peak RSS {max(r['peak_rss_mb'] for r in rows):.0f} MB; gen-* rows: {GEN_PROMPTS} prompts × "
        f"{GEN_TOKENS} new tokens per genome (evals/s = genomes/s)"
    )
    return "\n".join(lines)


def main_json(rows: list[dict], path: str | None) -> None:
    text = json.dumps(rows, indent=1)
    if path:
        Path(path).write_text(text)
    else:
        print(text)
