"""DEAP creator classes, created once per process (never inside an objective)."""

from __future__ import annotations

import numpy as np
from deap import base, creator

if not hasattr(creator, "EvoFitness"):
    creator.create("EvoFitness", base.Fitness, weights=(1.0,))
if not hasattr(creator, "EvoGenome"):
    # numpy-backed individual; DEAP's creator gives it a __deepcopy__/__reduce__ that keep attributes.
    creator.create("EvoGenome", np.ndarray, fitness=creator.EvoFitness)

Fitness = creator.EvoFitness
Genome = creator.EvoGenome


def make_individual(values: np.ndarray, gid: int) -> Genome:
    # DEAP's numpy __new__ goes through a Python list (slow for 10^4+ genes): view a float32 copy instead.
    ind = np.array(values, dtype=np.float32, copy=True).view(Genome)
    ind.fitness = Fitness()
    ind.gid = gid
    ind.terms = {}
    return ind


def copy_individual(ind: Genome) -> Genome:
    new = make_individual(ind, ind.gid)
    if ind.fitness.valid:
        new.fitness.values = ind.fitness.values
    new.terms = dict(ind.terms)
    return new
