"""A quality row's saved answer (its stock PEFT adapter directory) scored again, after the row: on each source
of the test split and on each further test set. Read back into a full-LoRA genome of the row's shape, so every
row (LoRA-XS included) is scored the same way; choosing nothing."""

from __future__ import annotations

from pathlib import Path

__all__ = ["by_source", "on_test_sets"]


def _task_and_genome(cfg, adapter: Path, **values):
    """The row's task (full-LoRA genome; ``values`` set by config path) and the adapter as its genome."""
    from safetensors.numpy import load_file

    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import task_spec
    from evolora.orchestrator.study.paths import with_values

    task = build_task(task_spec(with_values(cfg, {"lora.genome": "full", **values})))
    weights = load_file(str(Path(adapter) / "adapter_model.safetensors"))
    genome = task.seed_genome().copy()
    for s in task.layout:
        genome[s.offset : s.offset + s.size] = weights[s.key].reshape(-1)
    return task, genome


def by_source(cfg, adapter: Path) -> dict:
    """The adapter on each source of the test split (STS-B: MSRpar, headlines, answers-forums, …):
    {source: {"pairs", "gain_points"}} over the base model."""
    task, genome = _task_and_genome(cfg, adapter)
    base, final = task.test_scores(task.seed_genome())[1], task.test_scores(genome)[1]
    return {k: {"pairs": n, "gain_points": 100 * (final[k][0] - v)} for k, (v, n) in base.items()}


def on_test_sets(cfg, adapter: Path, paths) -> dict:
    """The adapter on each further test set (``--test``): {file name: {"pairs", "base", "final",
    "gain_points"}}."""
    out = {}
    for path in paths:
        task, genome = _task_and_genome(cfg, adapter, **{"data.test_path": str(path)})
        base, final = task.test(task.seed_genome()), task.test(genome)
        out[Path(path).name] = {
            "pairs": task.test_size,
            "base": base,
            "final": final,
            "gain_points": 100 * (final - base),
        }
    return out
