"""Variation operators, vectorised in numpy, each drawing from an explicit ``numpy.random.Generator``.

DEAP's ``cxBlend``/``mutGaussian`` loop over genes in Python, a cost that grows with the genome; these do the
same arithmetic in a few vector operations and are registered on the DEAP toolbox in
their place. They modify their arguments in place and return them, like DEAP's operators, and return the
draw parameters so lineage can record them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cx_blend", "mut_gaussian"]


def cx_blend(
    a: np.ndarray, b: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """BLX-alpha crossover: each gene of the children is drawn on the segment through the parents' genes,
    extended by ``alpha`` on both sides (as ``deap.tools.cxBlend``)."""
    gamma = ((1.0 + 2.0 * alpha) * rng.random(a.shape[0], dtype=np.float32) - alpha).astype(
        np.float32
    )
    diff = b - a  # (genes,)
    a_new = a + gamma * diff
    b_new = b - gamma * diff
    a[:] = a_new
    b[:] = b_new
    return a, b


def mut_gaussian(x: np.ndarray, sigma: float, indpb: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma²) noise to each gene with probability ``indpb`` (as ``deap.tools.mutGaussian``)."""
    noise = rng.standard_normal(x.shape[0], dtype=np.float32) * np.float32(sigma)
    if indpb < 1.0:
        noise *= rng.random(x.shape[0], dtype=np.float32) < indpb
    x += noise
    return x
