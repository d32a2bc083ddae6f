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
    """Best / mean fitness per generation and the validation score where it was computed."""
    gens = [r["gen"] for r in logbook]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(gens, [r["fit_best"] for r in logbook], label="fitness: best", color="tab:blue")
    ax.plot(gens, [r["fit_mean"] for r in logbook], label="fitness: mean", color="tab:blue", alpha=0.45, ls="--")
    vg = [r["gen"] for r in logbook if "val" in r]
    if vg:
        ax.plot(vg, [r["val"] for r in logbook if "val" in r], "o-", ms=3, label="validation (gen best)", color="tab:red")
        base = logbook[0].get("val_base")
        if base is not None:
            ax.axhline(base, color="grey", lw=1, ls=":", label="validation: base model")
    ax.set_xlabel("generation")
    ax.set_ylabel("score (higher is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
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
