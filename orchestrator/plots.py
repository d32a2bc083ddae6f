"""Pictures, saved as files for MLflow: a trial's curves (matplotlib PNG) and a study's Optuna
visualisations (plotly HTML, and PNG through optuna.visualization.matplotlib; no browser needed)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_curves", "plot_study"]


def plot_curves(logbook: list[dict], out: Path, title: str) -> Path:
    """Two panels over generations: fitness (best, mean ± std) and validation (generation best, champion,
    base model). Separate axes: fitness and validation live on different data and scales."""
    from matplotlib.ticker import MaxNLocator

    gens = [r["gen"] for r in logbook]
    fig, (ax_f, ax_v) = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
    best = [r["fit_best"] for r in logbook]
    mean = [r["fit_mean"] for r in logbook]
    std = [r.get("fit_std", 0.0) for r in logbook]
    ax_f.plot(gens, best, label="best", color="tab:blue")
    ax_f.plot(gens, mean, label="mean", color="tab:blue", alpha=0.5, ls="--")
    ax_f.fill_between(gens, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                      color="tab:blue", alpha=0.12, label="mean ± std")
    ax_f.set_ylabel("fitness (train batch)")
    ax_f.set_title(title)
    ax_f.legend(fontsize=8, loc="lower right")
    vrows = [r for r in logbook if "val" in r]
    if vrows:
        vg = [r["gen"] for r in vrows]
        ax_v.plot(vg, [r["val"] for r in vrows], "o-", ms=3, color="tab:red", label="generation best")
        ax_v.step(vg, [r["val_champion"] for r in vrows], where="post", color="black", lw=1.2, label="champion")
        base = logbook[0].get("val_base")
        if base is not None:
            ax_v.axhline(base, color="grey", lw=1, ls=":", label="base model")
        ax_v.legend(fontsize=8, loc="lower right")
    ax_v.set_ylabel("validation (held out)")
    ax_v.set_xlabel("generation")
    ax_v.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_f, ax_v):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_study(study, out_dir: Path) -> list[Path]:
    """Optimisation history, parameter importances and parallel coordinates, as HTML and PNG. Figures that
    cannot be made yet (e.g. importances with < 2 finished trials) are skipped with a note."""
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    out_dir.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    for name, fn, fn_mpl in (
        ("optimization_history", vis.plot_optimization_history, vis_mpl.plot_optimization_history),
        ("param_importances", vis.plot_param_importances, vis_mpl.plot_param_importances),
        ("parallel_coordinate", vis.plot_parallel_coordinate, vis_mpl.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(study).write_html(str(out_dir / f"{name}.html"), include_plotlyjs="cdn")
                written.append(out_dir / f"{name}.html")
                ax = fn_mpl(study)
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                fig.savefig(out_dir / f"{name}.png", dpi=110)
                plt.close(fig)
                written.append(out_dir / f"{name}.png")
        except Exception as e:  # not enough trials / parameters for this figure yet
            notes.append(f"{name}: not drawn ({type(e).__name__}: {e})")
    if notes:
        (out_dir / "notes.txt").write_text("\n".join(notes) + "\n")
        written.append(out_dir / "notes.txt")
    return written
