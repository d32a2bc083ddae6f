"""What the generation loop hands its observers, declared once: a generation's row and the lineage events.

Both stay plain dicts at run time (an observer logs a row to MLflow as it is, the lineage file is JSON lines),
typed here as :class:`~typing.TypedDict` so that every key is named, documented and checked in one place:
``tests/evolution/test_records.py`` runs the loop with every strategy and fails on a key declared nowhere.

A row's keys are the fields of :class:`GenerationRow`, or start with one of :data:`ROW_FAMILIES` (one key per
fitness term, guard metric, statistic, strategy figure or evaluator figure).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "GenerationRow",
    "ROW_FAMILIES",
    "BirthEvent",
    "EvaluationEvent",
    "ValidationEvent",
    "LineageEvent",
    "EVENT_KINDS",
]


class GenerationRow(TypedDict, total=False):
    """One generation, as numbers (and, for a few, strings): what MLflow logs as the run's curves."""

    gen: int  # 0 is the initial population
    nevals: int  # genomes scored this generation
    fit_best: (
        float  # fitness on the generation's train batch: best, mean, std, min over the population
    )
    fit_mean: float
    fit_std: float
    fit_min: float
    diversity: float  # mean L2 distance of the genomes to the population centroid
    val: float  # the validation metric of the generation's candidate, when it was validated
    val_base: float  # generation 0: the base model's validation value
    val_champion: float  # the best admissible validation value so far (the champion's)
    champion_id: int  # the champion's genome id (0: the base model)
    val_admissible: float  # a budgeted study: 1.0 when the candidate stayed within the budget
    val_id: int  # a budgeted study: the candidate's genome id
    val_excluded: str  # a budgeted study: why the candidate cannot be the champion
    evals_per_s: float  # genomes scored per second of evaluation
    gen_s: float  # the generation's wall time
    overhead_share: float  # the share of gen_s spent outside evaluation and validation
    species: (
        int  # speciated GA: number of species, then their sizes, best, distance, entropy, threshold
    )
    species_sizes: str  # JSON {species: size}
    species_best: str  # JSON {species: best fitness}
    species_mean_distance: float
    species_entropy: float
    species_threshold: float
    species_removed: int  # species removed for stagnation this generation
    sigma_rms: float  # snes: root mean square of the per-gene σ of the genes that move
    ray_actors: float  # evaluated on Ray actors: how many, bytes sent, per genome, actors replaced
    ray_bytes_sent: float
    ray_bytes_per_genome: float
    ray_replaced: float


# keys made per name: fit_<statistic>, term_<fitness term>, val_<guard>, val_base_<guard>
ROW_FAMILIES = ("fit_", "term_", "val_", "val_base_")

EVENT_KINDS = ("birth", "eval", "validation")


class BirthEvent(TypedDict, total=False):
    """A genome made: its parents, the operator and its parameters, the generator state before the draw."""

    event: Literal["birth"]
    gen: int
    id: int
    parents: list[int]
    op: str  # seed, mutation, crossover, elite, es-sample, es-update, …
    params: dict[str, Any]
    rng: str  # hex of the generator's state before the draw (absent where nothing was drawn)


class EvaluationEvent(TypedDict):
    """A genome scored on its train batch: the weighted fitness and each term's value."""

    event: Literal["eval"]
    gen: int
    id: int
    fitness: float
    terms: dict[str, float]


class ValidationEvent(TypedDict, total=False):
    """A genome scored on validation; in a budgeted study, whether it may be the champion and why not."""

    event: Literal["validation"]
    gen: int
    id: int
    value: float
    admissible: bool
    guards: dict[str, float]
    excluded: str


LineageEvent = BirthEvent | EvaluationEvent | ValidationEvent
