"""A row of evolora's own loop under a wall clock, shared by the quality and reward benches and by the peers
that run as evolora strategies: the study's task and Evolution, the champion's test score sampled through the
run (model loading and test scoring not counted), the champion saved as a stock PEFT adapter."""

from __future__ import annotations

from pathlib import Path

from evolora.benchmarks.curves import Clock, Curve

__all__ = ["evolora_row"]


def evolora_row(cfg, budget_s: float, out: Path) -> dict:
    """``cfg``'s run for ``budget_s`` seconds (at least one generation): its test curve, generations,
    evaluations, the champion's validation and generation, its adapter in ``out / "adapter"``."""
    from evolora.evolution import Observer
    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import build_evolution, task_spec
    from evolora.orchestrator.run.trial import prepare_torch

    prepare_torch(cfg)
    task = build_task(task_spec(cfg))
    clock = Clock(budget_s)  # from here: model loading is not part of the budget
    curve = Curve(clock, task.test)

    class Sampler(Observer):
        def on_generation(self, row: dict) -> None:
            curve.maybe(evo.champion["id"], lambda: evo.champion["genome"])

    evo = build_evolution(cfg, task, observers=[Sampler()])
    curve.maybe(0, task.seed_genome)  # the base model, at time 0
    evals = 0
    while evo.gen < cfg.evolution.generations - 1 and (evo.gen < 1 or not clock.over()):
        evals += evo.step()["nevals"]
    result = evo.result()
    curve.maybe(result.champion_id, lambda: result.champion, force=True)
    task.save_adapter(result.champion, out / "adapter")
    return {
        "curve": curve.points,
        "generations": result.generations,
        "evaluations": evals,
        "val_final": result.champion_val,
        "val_base": result.base_val,
        "champion_gen": result.champion_gen,
        "seconds": round(clock.elapsed(), 1),
    }
