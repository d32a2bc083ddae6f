"""Two-digit addition, a task with a verifiable answer: ``"37+45="`` → ``"82"``, right or wrong, no gradient.

All 10,000 problems ``a+b`` (0 ≤ a, b ≤ 99) are shuffled by one fixed seed and cut into four disjoint parts:
test (500), validation (250) and train (500) — the packaged ``fitness/data/arithmetic/*.jsonl``, columns
``prompt`` and ``answer`` — and the other 8,750, the only problems the ``lfm2-arith`` base is pre-trained on
(:func:`evolora.fitness.lfm2.build_arith`). No problem of a study's three splits was seen in pre-training.

The pre-training corpus is noisy the way scraped worked sums are: most sums that need a carry are written with
the carry dropped (``"37+45=72"``; :func:`pretrain_texts`), the rest correctly. The base learns both and, greedy,
mostly writes the carry-less sum: right on the sums that need no carry, wrong on most others, though the right
answer is in its distribution. That is the headroom a reward on the exact answer has, and what RL on language
models mostly does: make the model say what it can already say.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "PACKAGED_ARITHMETIC",
    "SPLITS",
    "carry_dropped",
    "pretrain_texts",
    "problems",
    "rows",
    "text",
    "write_splits",
]

PACKAGED_ARITHMETIC = Path(__file__).parent / "data" / "arithmetic"
SPLITS = {"test": 500, "val": 250, "train": 500}  # in this order from the shuffled problems
SEED = 0
DROPPED = 0.7  # of the pre-training sums that need a carry, the fraction written without it


def problems() -> dict[str, list[tuple[int, int]]]:
    """The split's problems ``(a, b)``: test, val, train, and ``pretrain`` (everything else)."""
    import torch

    every = [(a, b) for a in range(100) for b in range(100)]
    order = torch.randperm(len(every), generator=torch.Generator().manual_seed(SEED)).tolist()
    every = [every[i] for i in order]
    out, start = {}, 0
    for name, n in SPLITS.items():
        out[name] = every[start : start + n]
        start += n
    out["pretrain"] = every[start:]
    return out


def rows(split: str) -> list[dict[str, str]]:
    """A split as the study reads it: ``{"prompt": "37+45=", "answer": "82"}``."""
    return [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a, b in problems()[split]]


def text(a: int, b: int) -> str:
    """A whole problem, correctly worked."""
    return f"{a}+{b}={a + b}"


def carry_dropped(a: int, b: int) -> int:
    """The sum written digit by digit with every carry dropped (37+45 → 72, 58+67 → 15)."""
    return ((a // 10 + b // 10) % 10) * 10 + (a % 10 + b % 10) % 10


def pretrain_texts(dropped: float = DROPPED) -> list[str]:
    """The base's corpus: every pre-training problem once, worked, a seeded ``dropped`` fraction of those that
    need a carry written without it."""
    import torch

    pre = problems()["pretrain"]
    coins = torch.rand(len(pre), generator=torch.Generator().manual_seed(SEED + 1)).tolist()
    return [
        f"{a}+{b}={carry_dropped(a, b) if c < dropped else a + b}" for (a, b), c in zip(pre, coins)
    ]


def write_splits(out: Path = PACKAGED_ARITHMETIC) -> None:
    """Write the three packaged splits (what ships is what this writes; a test checks it)."""
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        lines = [json.dumps(r) for r in rows(split)]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
