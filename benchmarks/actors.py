"""`evolora bench --actors 1,2`: one evolution's generation time on Ray actors against one process, side by
side, and the bytes a generation sends per genome.

Every row evolves the same study (``studies/stsb-best.yaml``'s task, its ES at the given population; a GA
row beside it) from the same seed; the rows take one generation each in turn, round after round, so that
machine noise hits them alike. Reported per row: the median wall time of a generation (generation 0, which
sends each actor the strategy's state, and validation are left out), its ratio to the one-process row, the
actors and torch threads each, and the bytes sent per genome per generation (for the ES a replica on each
actor rebuilds the genomes from fitness values and a generator state: the same bytes whatever the genome's
size, which the ``rank-16`` row shows; the GA sends its genomes).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

__all__ = ["run_actors", "format_actors"]

BEST_STUDY = Path(__file__).resolve().parent.parent / "studies" / "stsb-best.yaml"


def _config(population: int, tiny: bool, over: list[str]):
    from evolora.orchestrator.study.load import load_study

    sets = [f"evolution.population={population}", "validation.every=100000", *over]
    if tiny:
        sets += ["data.train_subset=16", "data.dev_subset=16"]
    return load_study(BEST_STUDY, sets)


def _loop(cfg, actors: int, threads: int, address: str | None):
    """(Evolution, pool or None) for ``cfg`` on ``actors`` actors (0: this process) at ``threads`` each."""
    import torch

    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import build_evolution, task_spec
    from evolora.orchestrator.distributed.pool import RayPool
    from evolora.orchestrator.study.sections import resolved

    torch.set_num_threads(threads)
    task = build_task(task_spec(cfg))
    # num_cpus 0: the rows take turns, so idle actors of the other rows hold memory, not cores
    pool = RayPool(resolved(cfg), actors, threads, address, num_cpus=0) if actors else None
    evo = build_evolution(cfg, task, pool, [pool] if pool else [])
    return evo, pool, task


def run_actors(
    actors=(1, 2),
    population: int = 32,
    generations: int = 6,
    threads: int = 2,
    tiny: bool = False,
    log=print,
) -> list[dict]:
    """Rows: one process at ``threads``; each actor count n at max(1, threads // n) threads per actor; the
    ES at rank 16 on 2 actors (bytes only matter there); the GA on 2 actors."""
    import torch

    from evolora.orchestrator.distributed.cluster import LocalCluster

    if tiny:
        population, generations = 4, 3
    specs = _row_specs(actors, threads)
    runs = []
    # one head for every row's actors (each row its own driver)
    cluster = LocalCluster(os.cpu_count() or 1)
    try:
        for name, n, t, over in specs:
            cfg = _config(population, tiny, over)
            evo, pool, task = _loop(cfg, n, t, cluster.address)
            runs.append(
                {
                    "name": name,
                    "actors": n,
                    "threads": t,
                    "evo": evo,
                    "pool": pool,
                    "times": [],
                    "bytes": [],
                    "genes": task.layout.size,
                }
            )
            log(f"built {name}")
        for gen in range(generations):
            for r in runs:  # one generation of each row in turn
                torch.set_num_threads(r["threads"])
                row = r["evo"].step()
                # generation 0 syncs the actors, the last one validates
                if 0 < gen < generations - 1:
                    r["times"].append(row["gen_s"])
                    r["bytes"].append(row.get("ray_bytes_per_genome", 0.0))
            log(f"generation {gen} done")
    finally:
        for r in runs:
            if r["pool"] is not None:
                r["pool"].close()
        cluster.stop()
    rows = _table(runs, population)
    return rows


def _row_specs(actors, threads: int) -> list[tuple[str, int, int, list[str]]]:
    """(row, actors, threads per actor, overrides) of every row."""
    specs = [("process", 0, threads, [])]
    specs += [(f"ray-{n}", n, max(1, threads // n), []) for n in actors]
    specs += [
        ("ray-2 rank-16", 2, max(1, threads // 2), ["lora.rank=16", "lora.alpha=32"]),
        (
            "ray-2 ga",
            2,
            max(1, threads // 2),
            ["evolution.strategy=ga", "evolution.tournament_size=2", "evolution.elitism=1"],
        ),
    ]
    return specs


def _table(runs: list[dict], population: int) -> list[dict]:
    """Each row's median generation time, its ratio to one process, and bytes sent per genome."""
    rows = []
    base = statistics.median(runs[0]["times"])
    for r in runs:
        med = statistics.median(r["times"])
        rows.append(
            {
                "row": r["name"],
                "actors": r["actors"],
                "threads_per_actor": r["threads"],
                "genes": r["genes"],
                "population": population,
                "gen_s": med,
                "ratio": base / med if med else float("nan"),
                "bytes_per_genome": statistics.median(r["bytes"]) if r["actors"] else 0.0,
                "genome_bytes": 4 * r["genes"],
            }
        )
    return rows


def format_actors(rows: list[dict]) -> str:
    head = (
        f"{'row':<15}{'actors':>7}{'thr/actor':>10}{'genes':>8}{'gen s':>9}{'× process':>10}"
        f"{'B/genome':>10}{'genome B':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['row']:<15}{r['actors']:>7}{r['threads_per_actor']:>10}{r['genes']:>8}{r['gen_s']:>9.2f}"
            f"{r['ratio']:>9.2f}×{r['bytes_per_genome']:>10.0f}{r['genome_bytes']:>10}"
        )
    lines.append(
        "gen s: median wall time of a generation (not generation 0 or the last); × process: the one-process "
        "row's time over this row's; B/genome: bytes sent to the actors per genome and generation"
    )
    return "\n".join(lines)
