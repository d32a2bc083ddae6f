"""The reward benchmark's table and picture: per task, each row's test reward, time to each level (and as a
multiple of evolora's), guard and memory; with several budgets or seeds, each row's gain at each budget (mean ±
sd over seeds) and evolora's lead over the best peer there."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evolora.benchmarks.reward import LEVELS

__all__ = ["budget_table", "format_reward", "plot_reward"]


def budget_table(rows: list[dict]) -> dict:
    """Per task, per row, per budget: the test reward gain's mean, sd (None for one seed) and seeds; and per
    task and budget, evolora's lead over the best other row (negative: behind)."""
    out: dict = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        budgets = list(mine[0].get("at", {}))
        gains: dict = {}
        for r in mine:
            for b in budgets:
                gains.setdefault(r["row"], {}).setdefault(b, []).append(r["at"][b]["gain"])
        table = {
            row: {
                b: {
                    "mean": float(np.mean(g)),
                    "sd": float(np.std(g, ddof=1)) if len(g) > 1 else None,
                    "seeds": len(g),
                }
                for b, g in per.items()
            }
            for row, per in gains.items()
        }
        leads = {}
        for b in budgets:
            others = {n: v[b]["mean"] for n, v in table.items() if n != "evolora"}
            if others and "evolora" in table:
                best = max(others, key=others.get)
                leads[b] = {"best_peer": best, "lead": table["evolora"][b]["mean"] - others[best]}
        out[task] = {"gain": table, "evolora_vs_best_peer": leads}
    return out


def _budget_lines(rows: list[dict]) -> list[str]:
    several = len(rows[0].get("at", {})) > 1 or len({r.get("seed") for r in rows}) > 1
    if not several:
        return []
    lines = []
    for task, t in budget_table(rows).items():
        budgets = list(next(iter(t["gain"].values())))
        head = f"{task + ' gain at':24s}" + " ".join(f"{b + ' min':>16s}" for b in budgets)
        lines += ["", head, "-" * len(head)]
        for row, per in t["gain"].items():
            cells = []
            for b in budgets:
                c = per[b]
                sd = "" if c["sd"] is None else f" ±{c['sd']:.3f}"
                cells.append(f"{c['mean']:+8.3f}{sd:>8s}")
            lines.append(f"{row:24s}" + " ".join(cells))
        for b, v in t["evolora_vs_best_peer"].items():
            lines.append(f"{task} at {b} min: evolora {v['lead']:+.3f} against {v['best_peer']}")
    return lines


def format_reward(rows: list[dict]) -> str:
    head = (
        f"{'task':10s} {'row':14s} {'test base':>9s} {'test final':>10s} {'gain':>7s} "
        + " ".join(f"{'t(+' + str(lv) + ')':>9s}" for lv in LEVELS)
        + f" {'guard (test)':>20s} {'peak MiB':>8s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ts = " ".join(
            f"{'—' if t is None else f'{t / 60:.1f} min':>9s}" for t in r["seconds_to"].values()
        )
        guard = ", ".join(
            f"{k} {v:.3f} (base {r['test_guards_base'][k]:.3f})"
            for k, v in r["test_guards"].items()
        )
        several = len({e.get("seed") for e in rows}) > 1
        name = f"{r['row']}-s{r['seed']}" if several else r["row"]
        lines.append(
            f"{r['task']:10s} {name:14s} {r['test_base']:9.3f} {r['test_final']:10.3f} "
            f"{r['test_gain']:+7.3f} {ts} {guard or '—':>20s} {r['peak_rss_mib']:8.0f}"
        )
    for r in rows:
        if r["row"] != "evolora" and len({e.get("seed") for e in rows}) == 1:
            bits = [f"{k}: {v}×" for k, v in r["vs_evolora"].items() if v is not None]
            if bits:
                lines.append(
                    f"{r['task']} {r['row']}: time to level / evolora's: {', '.join(bits)}"
                )
    lines += _budget_lines(rows)
    return "\n".join(lines)


def plot_reward(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), dpi=120, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in rows if r["task"] == task):
            t, v = [p[0] / 60 for p in r["curve"]], [p[1] for p in r["curve"]]
            ax.plot(t, v, marker="o", ms=3, label=r["row"])
        ax.set_title(f"{task}: test reward (greedy) against time")
        ax.set_xlabel("wall-clock minutes (test scoring excluded)")
        ax.set_ylabel("test reward")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
