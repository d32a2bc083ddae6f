"""Pictures for MLflow: a trial's curves, species and basins (matplotlib figures, logged with
``log_figure``) and a study's Optuna visualisations (plotly HTML with plotly.js embedded, and PNG through
optuna.visualization.matplotlib; no browser or network needed)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np

from evolora.evolution.observers import Observer

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_curves", "plot_study", "BasinRecorder", "plot_basins", "plot_species", "close"]


def close(fig) -> None:
    plt.close(fig)


def plot_curves(logbook: list[dict], title: str, redrawn: bool = False):
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
    ax_f.fill_between(
        gens,
        [m - s for m, s in zip(mean, std)],
        [m + s for m, s in zip(mean, std)],
        color="tab:blue",
        alpha=0.12,
        label="mean ± std",
    )
    ax_f.set_ylabel(
        "fitness (train batch,\nredrawn every generation)" if redrawn else "fitness (train batch)"
    )
    ax_f.set_title(title)
    ax_f.legend(fontsize=8, loc="lower right")
    vrows = [r for r in logbook if "val" in r]
    if vrows:
        vg = [r["gen"] for r in vrows]
        ax_v.plot(
            vg, [r["val"] for r in vrows], "o-", ms=3, color="tab:red", label="generation best"
        )
        ax_v.step(
            vg,
            [r["val_champion"] for r in vrows],
            where="post",
            color="black",
            lw=1.2,
            label="champion",
        )
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
    return fig


def plot_study(study, out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """Optimisation history, parameter importances and parallel coordinates, as HTML and PNG; for a
    multi-objective study also the Pareto front, and the others drawn for the first objective (``names``
    label the objectives). Figures that cannot be made yet (e.g. importances with < 2 finished trials) are
    skipped with a note."""
    import functools

    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    out_dir.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    figures = [
        ("optimization_history", vis.plot_optimization_history, _history_png),
        ("param_importances", vis.plot_param_importances, vis_mpl.plot_param_importances),
        ("parallel_coordinate", vis.plot_parallel_coordinate, vis_mpl.plot_parallel_coordinate),
    ]
    if len(study.directions) > 1:
        names = list(names or [f"objective {i}" for i in range(len(study.directions))])
        first = {"target": lambda t: t.values[0], "target_name": names[0]}
        figures = [
            (n, functools.partial(fn, **first), functools.partial(fn_mpl, **first))
            for n, fn, fn_mpl in figures
        ]
        figures.insert(
            0,
            (
                "pareto_front",
                functools.partial(vis.plot_pareto_front, target_names=names),
                functools.partial(vis_mpl.plot_pareto_front, target_names=names),
            ),
        )
    for name, fn, fn_mpl in figures:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # embedded plotly: opens offline
                fn(study).write_html(str(out_dir / f"{name}.html"), include_plotlyjs=True)
                written.append(out_dir / f"{name}.html")
                _save_png(study, name, fn_mpl(study), out_dir / f"{name}.png")
                written.append(out_dir / f"{name}.png")
        except Exception as e:  # not enough trials / parameters for this figure yet
            notes.append(f"{name}: not drawn ({type(e).__name__}: {e})")
    if notes:
        (out_dir / "notes.txt").write_text("\n".join(notes) + "\n")
        written.append(out_dir / "notes.txt")
    return written


def _save_png(study, name: str, ax, path: Path) -> None:
    """A matplotlib study figure as a PNG (parallel coordinates: long dotted paths shortened and slanted)."""
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(10, 6) if name == "parallel_coordinate" else fig.set_size_inches(8, 5)
    if name == "parallel_coordinate":  # long dotted paths: shortened and slanted, never overlapping
        fig.canvas.draw()  # tick labels are filled in at draw time
        names = sorted({k for t in study.trials for k in t.params})
        for a in fig.axes[:1]:
            a.set_xticks(
                a.get_xticks(),
                [_short(_full(t.get_text(), names)) for t in a.get_xticklabels()],
                rotation=25,
                ha="right",
                fontsize=8,
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _full(label: str, names: list[str]) -> str:
    """Optuna cuts long axis labels ("evolution.mutatio..."): the parameter name it stands for."""
    if label.endswith("..."):
        hits = [n for n in names if n.startswith(label[:-3])]
        if len(hits) == 1:
            return hits[0]
    return label


def _short(label: str) -> str:
    """``evolution.es.learning_rate`` → ``es.learning_rate``: the last two parts of a dotted config path."""
    parts = label.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else label


def _history_png(study, target=None, target_name: str = "objective (validation)"):
    """Each trial's value (pruned trials at their last reported value, marked ×) and the best so far, over
    integer trial numbers; ``target`` picks the value of a multi-objective trial."""
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    value = target or (lambda t: t.value)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    pruned = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.PRUNED and t.intermediate_values
    ]
    if not done and not pruned:
        raise ValueError("no finished trials yet")
    ax.plot(
        [t.number for t in done], [value(t) for t in done], "o", color="tab:blue", label="complete"
    )
    if pruned:
        ax.plot(
            [t.number for t in pruned],
            [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
            "x",
            color="tab:red",
            label="pruned (last reported)",
        )
    if done:
        better = max if study.directions[0].name == "MAXIMIZE" else min
        best, xs, ys = None, [], []
        for t in sorted(done, key=lambda t: t.number):
            best = value(t) if best is None else better(best, value(t))
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="black", lw=1.2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(target_name)
    ax.set_title(f"{study.study_name}: optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


class BasinRecorder(Observer):
    """Keeps the population (genomes, species, fitness) at a few generations for the basin map."""

    def __init__(self, generations: int, snapshots: int = 4) -> None:
        self.at = sorted(
            {round(i * (generations - 1) / max(snapshots - 1, 1)) for i in range(snapshots)}
        )
        self.snaps: dict[int, dict] = {}

    def on_population(self, gen: int, population: list) -> None:
        if gen in self.at:
            self.snaps[gen] = {
                "genomes": np.stack([np.asarray(i, dtype=np.float32) for i in population]),
                "species": np.array([getattr(i, "species", 0) for i in population]),
                "fitness": np.array([i.fitness.values[0] for i in population]),
            }


def plot_basins(rec: BasinRecorder, champion: np.ndarray, title: str):
    """The population projected to 2-D by one PCA fitted on all snapshots of the trial, one panel per
    snapshot generation, coloured by species, the champion marked with a star."""
    if not rec.snaps:
        return None
    gens = sorted(rec.snaps)
    allg = np.concatenate([rec.snaps[g]["genomes"] for g in gens]).astype(np.float64)  # (n, genes)
    mu = allg.mean(axis=0)
    _, _, vt = np.linalg.svd(allg - mu, full_matrices=False)
    comps = vt[:2]  # (2, genes)
    proj = lambda x: (np.asarray(x, np.float64) - mu) @ comps.T  # noqa: E731
    star = proj(champion[None])[0]
    all_xy = proj(allg)
    # a 2-column grid, not one long row: readable at the width MLflow's artifact viewer shows it
    ncols = 2 if len(gens) > 1 else 1
    nrows = -(-len(gens) // ncols)
    fig, grid = plt.subplots(
        nrows,
        ncols,
        figsize=(4.6 * ncols + 1.2, 4.0 * nrows),
        dpi=110,
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    axes = [list(grid.flat)[: len(gens)]]
    for extra in list(grid.flat)[len(gens) :]:
        extra.set_visible(False)
    cmap = plt.get_cmap("tab10")
    for i, (ax, g) in enumerate(zip(axes[0], gens)):
        s = rec.snaps[g]
        xy = proj(s["genomes"])
        for sid in sorted(set(s["species"].tolist())):
            m = s["species"] == sid
            ax.scatter(
                xy[m, 0], xy[m, 1], s=30, color=cmap(sid % 10), label=f"species {sid}", alpha=0.8
            )
        ax.scatter([star[0]], [star[1]], marker="*", s=260, color="black", label="champion")
        ax.set_title(f"generation {g}", fontsize=11)
        if i // ncols == nrows - 1 or i + ncols >= len(gens):
            ax.set_xlabel("PC 1", fontsize=10)
        if i % ncols == 0:
            ax.set_ylabel("PC 2", fontsize=10)
        ax.grid(alpha=0.3)
    pad = 0.05 * (all_xy.max(0) - all_xy.min(0) + 1e-12)
    axes[0][0].set_xlim(
        min(all_xy[:, 0].min(), star[0]) - pad[0], max(all_xy[:, 0].max(), star[0]) + pad[0]
    )
    axes[0][0].set_ylim(
        min(all_xy[:, 1].min(), star[1]) - pad[1], max(all_xy[:, 1].max(), star[1]) + pad[1]
    )
    _shared_legend(fig, axes[0])
    fig.suptitle(
        f"{title}: population in genome space\n(PCA fitted once on all panels)", fontsize=11
    )
    fig.tight_layout(rect=(0, 0, 1 - 1.2 / (4.6 * ncols + 1.2), 0.93))
    return fig


def _shared_legend(fig, axes) -> None:
    """One legend for every panel: species in order, the champion last."""
    legend: dict = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    order = sorted(
        legend,
        key=lambda s: (s == "champion", int(s.split()[-1]) if s.startswith("species") else 0),
    )
    fig.legend([legend[k] for k in order], order, loc="upper right", fontsize=9)


def plot_species(logbook: list[dict], title: str):
    """Species sizes over generations as a stacked area (only for speciated runs)."""
    import json

    rows = [
        (r["gen"], json.loads(r["species_sizes"]))
        for r in logbook
        if isinstance(r.get("species_sizes"), str)
    ]
    if not rows:
        return None
    sids = sorted({int(s) for _, sz in rows for s in sz})
    gens = [g for g, _ in rows]
    sizes = np.array([[sz.get(str(s), 0) for _, sz in rows] for s in sids])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    cmap = plt.get_cmap("tab10")
    ax.stackplot(
        gens,
        sizes,
        labels=[f"species {s}" for s in sids],
        colors=[cmap(s % 10) for s in sids],
        alpha=0.85,
    )
    ax.set_xlabel("generation")
    ax.set_ylabel("genomes")
    ax.set_title(f"{title}: species sizes")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
