"""NEAT-style speciation for fixed-topology genomes.

Genomes are grouped into species by a compatibility distance to each species' representative; the
threshold adapts each generation toward a target species count; fitness is shared explicitly inside a
species (adjusted = shifted fitness / species size); a species whose best has not improved for
``stagnation`` generations is removed (never the one holding the population's best); offspring are
allocated to species in proportion to their summed adjusted fitness; selection, crossover and elitism
happen within a species.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evolora.evolution.genome import GenomeLayout
from evolora.evolution.options import option

__all__ = ["SpeciationParams", "Speciation", "distance", "allocate"]


@dataclass(frozen=True)
class SpeciationParams:
    """NEAT-style speciation of the GA population: each field is the study file's ``evolution.speciation`` key of
    its name, declared here once."""

    distance: Literal["l2", "cosine", "delta_l2"] = option(
        "l2",
        "compatibility distance: RMS gene difference, 1 − cosine, or RMS difference of the LoRA deltas B·A",
    )
    threshold: float | None = option(
        None,
        "initial compatibility threshold, adapted each generation toward "
        "target_species (null: the first population's mean distance)",
        gt=0,
    )
    target_species: int = option(3, "the threshold moves toward this many species", ge=1)
    threshold_step: float = option(0.1, "relative threshold change per generation", gt=0, lt=1)
    stagnation: int = option(
        15, "generations without improvement before a species is removed", ge=1
    )
    sharing: bool = option(
        True, "explicit fitness sharing (adjusted fitness = fitness / species size)"
    )
    elitism: int = option(1, "best members of each species copied unchanged", ge=0)
    min_threshold: float = 1e-6


def _delta(genome: np.ndarray, layout: GenomeLayout) -> np.ndarray:
    """Concatenated LoRA deltas B·A of every adapted matrix (what the genome changes in the weights)."""
    arrays = {s.key: s.view(genome) for s in layout}
    parts = []
    for s in layout:
        if s.kind == "A":
            b = arrays[s.key.replace(".lora_A.", ".lora_B.")]
            # (out, in)
            parts.append((b.astype(np.float64) @ arrays[s.key].astype(np.float64)).ravel())
    return np.concatenate(parts)


def distance(
    a: np.ndarray, b: np.ndarray, kind: str = "l2", layout: GenomeLayout | None = None
) -> float:
    """Compatibility distance. ``l2``: RMS difference of the genes; ``cosine``: 1 − cos(a, b);
    ``delta_l2``: RMS difference of the LoRA deltas B·A (needs the layout)."""
    if kind == "delta_l2":
        if layout is None:
            raise ValueError("delta_l2 needs the genome layout")
        a, b = _delta(a, layout), _delta(b, layout)
        kind = "l2"
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if kind == "l2":
        return float(np.sqrt(np.mean((a64 - b64) ** 2)))
    if kind == "cosine":
        na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
        if na == 0 or nb == 0:
            return 0.0 if na == nb else 1.0
        return float(1.0 - a64 @ b64 / (na * nb))
    raise ValueError(f"unknown distance {kind!r}; known: l2, cosine, delta_l2")


def allocate(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer offspring counts proportional to ``shares`` summing to ``total`` (largest remainder, ties
    to the lower index)."""
    shares = np.asarray(shares, np.float64)
    if shares.sum() <= 0:
        shares = np.ones_like(shares)
    exact = shares / shares.sum() * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


class Speciation:
    """Keeps species across generations: ids, representatives, best-so-far, stagnation, threshold."""

    def __init__(self, params: SpeciationParams, layout: GenomeLayout | None = None) -> None:
        self.p, self.layout = params, layout
        self.threshold = params.threshold
        self.species: dict[int, dict] = {}  # sid → {"rep": genome, "best": float, "since": int}
        self._next_sid = 0

    def dist(self, a, b) -> float:
        return distance(a, b, self.p.distance, self.layout)

    def assign(self, genomes: list[np.ndarray], fitness: np.ndarray, gen: int) -> dict:
        """Species id per genome; updates representatives, stagnation, removal and the threshold.
        Returns {"labels", "removed", "stats"}."""
        if self.threshold is None:
            self.threshold = max(self.mean_distance(genomes), self.p.min_threshold)
        labels = np.full(len(genomes), -1)
        reps = {sid: s["rep"] for sid, s in self.species.items()}
        for i, g in enumerate(genomes):
            for sid, rep in reps.items():
                if self.dist(g, rep) < self.threshold:
                    labels[i] = sid
                    break
            else:
                sid = self._next_sid
                self._next_sid += 1
                reps[sid] = np.array(g, copy=True)
                self.species[sid] = {"rep": reps[sid], "best": -np.inf, "since": gen}
                labels[i] = sid
        present = sorted(set(labels.tolist()))
        self.species = {sid: self.species[sid] for sid in present}
        best_overall = int(np.argmax(fitness))
        removed = []
        for sid in present:
            members = np.flatnonzero(labels == sid)
            top = members[np.argmax(fitness[members])]
            s = self.species[sid]
            if fitness[top] > s["best"]:
                s["best"], s["since"] = float(fitness[top]), gen
            # the species' best represents it next generation
            s["rep"] = np.array(genomes[top], copy=True)
            stagnant = gen - s["since"] >= self.p.stagnation
            if stagnant and labels[best_overall] != sid and len(present) - len(removed) > 1:
                removed.append(sid)
        for sid in removed:
            del self.species[sid]
        # move the threshold toward the target count
        n = len(present)
        if n > self.p.target_species:
            self.threshold *= 1 + self.p.threshold_step
        elif n < self.p.target_species:
            self.threshold = max(self.p.min_threshold, self.threshold * (1 - self.p.threshold_step))
        sizes = np.array([np.sum(labels == sid) for sid in present])
        prob = sizes / sizes.sum()
        stats = {
            "species": n,
            # JSON strings: rows stay flat numbers-or-strings (DEAP's Logbook takes dict values as chapters)
            "species_sizes": json.dumps({str(s): int(c) for s, c in zip(present, sizes)}),
            "species_best": json.dumps(
                {str(s): float(fitness[labels == s].max()) for s in present}
            ),
            "species_mean_distance": self.mean_distance(genomes),
            "species_entropy": float(-(prob * np.log(prob)).sum()),
            "species_threshold": float(self.threshold),
            "species_removed": len(removed),
        }
        return {"labels": labels, "removed": removed, "stats": stats}

    def mean_distance(self, genomes: list[np.ndarray], max_pairs: int = 256) -> float:
        """Mean pairwise compatibility distance (over at most ``max_pairs`` fixed pairs, for speed)."""
        n = len(genomes)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        if len(pairs) > max_pairs:
            step = len(pairs) / max_pairs
            pairs = [pairs[int(k * step)] for k in range(max_pairs)]
        return (
            float(np.mean([self.dist(genomes[i], genomes[j]) for i, j in pairs])) if pairs else 0.0
        )

    def adjusted(self, fitness: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Explicit fitness sharing: (fitness − min + ε) / species size (plain shifted fitness if off)."""
        shifted = fitness - fitness.min() + 1e-9
        if not self.p.sharing:
            return shifted
        sizes = {sid: np.sum(labels == sid) for sid in set(labels.tolist())}
        return np.array([f / sizes[sid] for f, sid in zip(shifted, labels)])

    def state_dict(self) -> dict:
        return {"threshold": self.threshold, "species": self.species, "next_sid": self._next_sid}

    def load_state_dict(self, state: dict) -> None:
        self.threshold = state["threshold"]
        self.species = state["species"]
        self._next_sid = state["next_sid"]
