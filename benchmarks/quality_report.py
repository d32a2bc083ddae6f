"""The quality benchmark's table and picture: each row's test gain, share of the gradient's and time to each
threshold, the gain by source, and the test-gain curves of every row against time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evolora.benchmarks.peers import PEERS
from evolora.benchmarks.quality import THRESHOLDS

__all__ = ["at_budget_table", "format_quality", "plot_quality", "time_ratios"]

RATIO_AT = (0.5, 1.0)  # the thresholds the summary compares times at


def time_ratios(rows: list[dict]) -> dict:
    """For each threshold of :data:`RATIO_AT` and each row: the time it took to reach it, how many times
    sooner than the slowest peer row (a peer that never reached it counts as its budget: the ratio is then a
    lower bound, ``at_least``), its time as a multiple of the fastest peer's (``x_best_peer_time``, for the
    rows that are not peers; below 1: sooner than every peer) and of the gradient row's — each against the
    rows of its own seed."""
    out = {}
    for th in RATIO_AT:
        key = f"+{th}"
        per_row = {}
        for r in rows:
            same = [
                e for e in rows if e.get("seed") == r.get("seed")
            ]  # a seed's rows with each other
            peers = [e for e in same if _of(e) in PEERS]
            slow = max(peers, key=lambda e: _t_or_budget(e, key), default=None)
            fast = min(peers, key=lambda e: _t_or_budget(e, key), default=None)
            grad = next((e for e in same if _of(e) == "gradient"), None)
            t = r["seconds_to"][key]
            entry = {"seconds": t}
            if t is not None and slow is not None and slow is not r:
                entry["vs_slowest_peer"] = round(_t_or_budget(slow, key) / max(t, 1e-9), 2)
                none = all(p["seconds_to"][key] is None for p in peers)
                entry["slowest_peer"] = "every peer" if none else slow["row"]
                entry["at_least"] = slow["seconds_to"][key] is None
            if t is not None and fast and fast["seconds_to"][key] and _of(r) not in PEERS:
                entry["x_best_peer_time"] = round(t / fast["seconds_to"][key], 2)
                entry["best_peer"] = fast["row"]
            if t is not None and grad is not None and grad["seconds_to"][key]:
                entry["x_gradient_time"] = round(t / grad["seconds_to"][key], 2)
            per_row[r["row"]] = entry
        out[key] = per_row
    return out


def _of(r: dict) -> str:
    """The row a result is of (a result per seed is named ``row-s<seed>``)."""
    return r.get("of", r["row"])


def at_budget_table(rows: list[dict]) -> dict:
    """Each row's test gain (points) at each budget, over its seeds: mean, standard deviation, seeds; and at
    each budget the best peer's mean and every other row's lead over it (negative: behind)."""
    budgets = list(rows[0].get("at", {}))
    by_row: dict[str, list[dict]] = {}
    for r in rows:
        by_row.setdefault(_of(r), []).append(r)
    table = {}
    for name, rs in by_row.items():
        table[name] = {}
        for b in budgets:
            g = np.array([100 * r["at"][b]["gain"] for r in rs if b in r.get("at", {})])
            sd = float(g.std(ddof=1)) if g.size > 1 else None
            table[name][b] = {"mean": float(g.mean()), "sd": sd, "seeds": int(g.size)}
    leads = {}
    for b in budgets:
        peers = {n: v[b]["mean"] for n, v in table.items() if n in PEERS and b in v}
        if not peers:
            continue
        best = max(peers, key=peers.get)
        leads[b] = {
            "best_peer": best,
            "best_peer_gain": peers[best],
            "lead": {n: v[b]["mean"] - peers[best] for n, v in table.items() if n not in PEERS},
        }
    return {"gain": table, "vs_best_peer": leads}


def _budget_lines(rows: list[dict]) -> list[str]:
    """The gain at each budget read off each row's curve (mean ± sd over seeds), and the lead over the best
    peer at each budget."""
    t = at_budget_table(rows)
    budgets = list(rows[0].get("at", {}))
    if len(budgets) < 2 and all(v[b]["seeds"] < 2 for v in t["gain"].values() for b in v):
        return []
    head = f"{'gain pts at':19s}" + " ".join(f"{b + ' min':>14s}" for b in budgets)
    lines = ["", head, "-" * len(head)]
    for name, per in t["gain"].items():
        cells = []
        for b in budgets:
            c = per.get(b)
            sd = "" if c is None or c["sd"] is None else f" ±{c['sd']:.2f}"
            cells.append(f"{'-':>14s}" if c is None else f"{c['mean']:+7.2f}{sd:>7s}")
        lines.append(f"{name:19s}" + " ".join(cells))
    for b, v in t["vs_best_peer"].items():
        ahead = ", ".join(f"{n} {d:+.2f}" for n, d in v["lead"].items() if n != "gradient")
        lines.append(
            f"at {b} min the best peer is {v['best_peer']} ({v['best_peer_gain']:+.2f}); lead over it: {ahead}"
        )
    return lines


def _t_or_budget(r: dict, key: str) -> float:
    t = r["seconds_to"][key]
    return r["budget_s"] if t is None else t


def _fmt_s(s) -> str:
    return "not reached" if s is None else f"{s / 60:.1f} min"


def format_quality(rows: list[dict]) -> str:
    head = (
        f"{'row':17s} {'test base':>9s} {'test final':>10s} {'gain pts':>8s} {'×gradient':>9s} "
        + " ".join(f"{'t(+' + str(t) + ')':>11s}" for t in THRESHOLDS)
        + f" {'evals/steps':>11s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        share = (
            f"{100 * r['share_of_gradient']:.0f}%"
            if r.get("share_of_gradient") is not None
            else "-"
        )
        work = r.get("evaluations", r.get("steps", 0))
        lines.append(
            f"{r['row']:17s} {r['test_base']:9.5f} {r['test_final']:10.5f} {r['test_gain_points']:+8.2f} "
            f"{share:>9s} "
            + " ".join(f"{_fmt_s(r['seconds_to'][f'+{t}']):>11s}" for t in THRESHOLDS)
            + f" {work:11d}"
        )
    r0 = rows[0]
    lines.append(
        f"budget {r0['budget_s'] / 60:g} min per row, torch threads {r0['threads']}; test = sts-dev "
        "(Spearman × 100), chosen by nothing"
    )
    lines += _ratio_lines(rows)
    lines += _budget_lines(rows)
    sources = sorted({k for r in rows for k in r.get("test_by_source", {})})
    # where each row's gain comes from: the final answer's gain on each source's pairs
    if len(sources) > 1:
        pairs = {
            k: next(
                r["test_by_source"][k]["pairs"] for r in rows if k in r.get("test_by_source", {})
            )
            for k in sources
        }
        head = f"{'gain pts by source':19s}" + " ".join(f"{k[:14]:>14s}" for k in sources)
        lines += [
            "",
            head,
            f"{'(pairs)':19s}" + " ".join(f"{pairs[k]:>14d}" for k in sources),
            "-" * len(head),
        ]
        for r in rows:
            got = r.get("test_by_source", {})
            lines.append(
                f"{r['row']:19s}"
                + " ".join(
                    f"{got[k]['gain_points']:+14.2f}" if k in got else f"{'-':>14s}"
                    for k in sources
                )
            )
    lines += _test_set_lines(rows)
    return "\n".join(lines)


def _test_set_lines(rows: list[dict]) -> list[str]:
    """Each row's final gain on sts-dev and on every further test set (``--test``), and on each set which row
    leads (and the gradient's standing there)."""
    names = sorted({k for r in rows for k in r.get("test_sets", {})})
    if not names:
        return []
    head = f"{'gain pts by test set':21s}{'sts-dev':>14s}" + " ".join(
        f"{k[:14]:>14s}" for k in names
    )
    lines = ["", head, "-" * len(head)]
    for r in rows:
        got = r.get("test_sets", {})
        lines.append(
            f"{r['row']:21s}{r['test_gain_points']:+14.2f}"
            + " ".join(
                f"{got[k]['gain_points']:+14.2f}" if k in got else f"{'-':>14s}" for k in names
            )
        )
    for k in ["sts-dev", *names]:
        gains = {
            r["row"]: (
                r["test_gain_points"]
                if k == "sts-dev"
                else r.get("test_sets", {}).get(k, {}).get("gain_points")
            )
            for r in rows
        }
        gains = {n: g for n, g in gains.items() if g is not None}
        evo = {n: g for n, g in gains.items() if n != "gradient"}
        if not evo:
            continue
        lead = max(evo, key=evo.get)
        grad = gains.get("gradient")
        where = (
            ""
            if grad is None
            else f"; {'ahead of' if evo[lead] > grad else 'behind'} the gradient ({grad:+.2f})"
        )
        lines.append(f"on {k}: {lead} leads the gradient-free rows at {evo[lead]:+.2f}{where}")
    return lines


def _ratio_lines(rows: list[dict]) -> list[str]:
    """Time to quality as ratios, one line per threshold: each row that reached it, how many times sooner
    than the slowest peer and at how many times the gradient's time."""
    lines = []
    for key, per_row in time_ratios(rows).items():
        parts = []
        for name, e in per_row.items():
            if e["seconds"] is None:
                parts.append(f"{name} not reached")
                continue
            bits = [f"{e['seconds'] / 60:.1f} min"]
            if "vs_slowest_peer" in e:
                bits.append(
                    f"{'≥' if e['at_least'] else ''}{e['vs_slowest_peer']:g}× sooner than {e['slowest_peer']}"
                )
            if "x_best_peer_time" in e:
                bits.append(
                    f"{e['x_best_peer_time']:g}× the time of the best peer ({e['best_peer']})"
                )
            if "x_gradient_time" in e:
                bits.append(f"{e['x_gradient_time']:g}× the gradient's time")
            parts.append(f"{name} {', '.join(bits)}")
        lines.append(f"time to {key} test points: " + "; ".join(parts))
    return lines


def plot_quality(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    colours = plt.cm.tab20.colors  # twenty distinct colours: every row its own
    for i, r in enumerate(rows):
        t = [p[0] / 60 for p in r["curve"]]
        g = [(p[1] - r["test_base"]) * 100 for p in r["curve"]]
        ls = "--" if _of(r) == "gradient" else (":" if _of(r) in PEERS else "-")
        ax.plot(
            t,
            g,
            marker="o",
            ms=3,
            label=r["row"],
            ls=ls,
            color=colours[(2 * i) % 20 + (2 * i) // 20],
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("wall-clock minutes (test scoring excluded)")
    ax.set_ylabel("test gain over base (Spearman points)")
    ax.set_title("STS-B test (sts-dev) gain against time, LoRA on all-MiniLM-L6-v2")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
