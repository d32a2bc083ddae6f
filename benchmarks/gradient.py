"""The quality bench's ceiling, and the only gradient in evolora: LoRA (the row's shape) trained by AdamW on the
differentiable surrogate of STS-B — MSE between the pair cosine of mean-pooled embeddings and gold / 5 — on
the stock peft model, its test score sampled through the run like every other row's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evolora.benchmarks.curves import Clock, Curve

__all__ = ["gradient_row"]


def _embed(task, sentences, max_length: int):
    """Mean-pooled embeddings of ``sentences`` through the task's model, with gradients: (batch, hidden)."""
    from evolora.fitness import mean_pool

    enc = task.evaluator.tok(
        list(sentences), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    enc = {k: v.to(task.flat.buffer.device) for k, v in enc.items()}
    return mean_pool(task.flat.model(**enc).last_hidden_state, enc["attention_mask"])


def gradient_row(
    cfg, budget_s: float, out: Path, epochs: int = 2, batch: int = 32, lr: float = 1e-3
) -> dict:
    import torch
    import torch.nn.functional as F

    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import task_spec
    from evolora.orchestrator.run.trial import prepare_torch

    prepare_torch(cfg)
    # stock peft LoRA path
    task = build_task(task_spec(cfg).replace(model={"merge_weights": False, "cache": False}))
    model = task.flat.model
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr)
    train = task.train  # the train split (validation pairs removed)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    clock = Clock(budget_s)

    def test(_):
        model.eval()
        try:
            return task.test(task.flat.read())
        finally:
            model.train()

    curve = Curve(clock, test)
    step = 0
    curve.maybe(0, lambda: None)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order), batch):
            if step > 0 and clock.over():
                break
            idx = order[i : i + batch]
            s1 = [train.s1[j] for j in idx]
            s2 = [train.s2[j] for j in idx]
            gold = torch.tensor(train.gold[idx] / 5.0, dtype=torch.float32)
            cos = (
                _embed(task, s1, cfg.data.max_length) * _embed(task, s2, cfg.data.max_length)
            ).sum(dim=1)  # (batch,)
            loss = F.mse_loss(cos, gold)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            curve.maybe(step, lambda: None)
    model.eval()
    curve.maybe(step, lambda: None, force=True)
    model.save_pretrained(str(out / "adapter"))
    return {
        "curve": curve.points,
        "steps": step,
        "epochs": round(step * batch / len(train), 3),
        "seconds": round(clock.elapsed(), 1),
    }
