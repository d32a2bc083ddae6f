"""The quality benchmark's table and picture: each row's test gain, share of the gradient's and time to each
threshold, the gain by source, and the test-gain curves of every row against time."""

from __future__ import annotations

from pathlib import Path

from .quality import THRESHOLDS

__all__ = ["format_quality", "plot_quality"]


def _fmt_s(s) -> str:
    return "not reached" if s is None else f"{s / 60:.1f} min"


def format_quality(rows: list[dict]) -> str:
    head = (f"{'row':11s} {'test base':>9s} {'test final':>10s} {'gain pts':>8s} {'×gradient':>9s} "
            + " ".join(f"{'t(+' + str(t) + ')':>11s}" for t in THRESHOLDS) + f" {'evals/steps':>11s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        share = f"{100 * r['share_of_gradient']:.0f}%" if r.get("share_of_gradient") is not None else "-"
        work = r.get("evaluations", r.get("steps", 0))
        lines.append(f"{r['row']:11s} {r['test_base']:9.5f} {r['test_final']:10.5f} {r['test_gain_points']:+8.2f} "
                     f"{share:>9s} " + " ".join(f"{_fmt_s(r['seconds_to'][f'+{t}']):>11s}" for t in THRESHOLDS)
                     + f" {work:11d}")
    r0 = rows[0]
    lines.append(f"budget {r0['budget_s'] / 60:g} min per row, torch threads {r0['threads']}; test = sts-dev "
                 "(Spearman × 100), chosen by nothing")
    sources = sorted({k for r in rows for k in r.get("test_by_source", {})})
    if len(sources) > 1:  # where each row's gain comes from: the final answer's gain on each source's pairs
        pairs = {k: next(r["test_by_source"][k]["pairs"] for r in rows if k in r.get("test_by_source", {}))
                 for k in sources}
        head = f"{'gain pts by source':19s}" + " ".join(f"{k[:14]:>14s}" for k in sources)
        lines += ["", head, f"{'(pairs)':19s}" + " ".join(f"{pairs[k]:>14d}" for k in sources), "-" * len(head)]
        for r in rows:
            got = r.get("test_by_source", {})
            lines.append(f"{r['row']:19s}" + " ".join(f"{got[k]['gain_points']:+14.2f}" if k in got else f"{'-':>14s}"
                                                      for k in sources))
    return "\n".join(lines)


def plot_quality(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for r in rows:
        t = [p[0] / 60 for p in r["curve"]]
        g = [(p[1] - r["test_base"]) * 100 for p in r["curve"]]
        ax.plot(t, g, marker="o", ms=3, label=r["row"], ls="--" if r["row"] == "gradient" else "-")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("wall-clock minutes (test scoring excluded)")
    ax.set_ylabel("test gain over base (Spearman points)")
    ax.set_title("STS-B test (sts-dev) gain against time, LoRA on all-MiniLM-L6-v2")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
