"""What a task is built from: :class:`TaskSpec` (plain values the orchestrator fills from a resolved study),
its fitness terms made and checked by name and params, and its lengths checked against the model's."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from evolora.evolution.errors import ConfigError, RegistryError
from evolora.fitness.plugins import FITNESS_TERMS
from evolora.fitness.registry import FitnessTerm
from evolora.fitness.tables import Columns

__all__ = [
    "TaskSpec",
    "make_term",
    "make_terms",
    "build_terms",
    "check_lengths",
    "check_genome",
    "LISTED",
    "GENOMES",
    "INITS",
]

GENOMES = ("full", "xs")  # lora.genome: what evolves (fitness.genomes)
INITS = ("kaiming", "eva")  # lora.init: how a full genome's LoRA A starts


def check_genome(
    genome: str, init: str, rank: int, a_subspace: int | None, b_subspace: int | None
) -> None:
    """The rules of what evolves (``lora.genome``, ``init``, ``a_subspace``, ``b_subspace``), in one place: a
    :class:`TaskSpec` checks them when made, the study file's schema by calling this. What depends on the
    model (a subspace wider than a module) is checked when the task is built."""
    if genome not in GENOMES:
        raise ConfigError("lora.genome", f"must be one of {', '.join(GENOMES)}", genome)
    if init not in INITS:
        raise ConfigError("lora.init", f"must be one of {', '.join(INITS)}", init)
    if genome == "xs" and init == "eva":
        raise ConfigError(
            "lora.init",
            "eva sets LoRA A; with lora.genome: xs A is fixed at each weight's SVD (use "
            "kaiming, which xs ignores)",
            init,
        )
    if a_subspace is not None:
        if init != "eva":
            raise ConfigError(
                "lora.a_subspace",
                "keeps A within the eva directions: it needs lora.init: eva",
                a_subspace,
            )
        if a_subspace < rank:
            raise ConfigError("lora.a_subspace", f"must be at least lora.rank ({rank})", a_subspace)
    if b_subspace is not None:
        if genome == "xs":
            raise ConfigError(
                "lora.b_subspace",
                "holds a full genome's B in a subspace; with lora.genome: xs B is "
                "fixed at each weight's SVD (use lora.genome: full)",
                b_subspace,
            )
        if b_subspace < rank:
            raise ConfigError("lora.b_subspace", f"must be at least lora.rank ({rank})", b_subspace)


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs, as plain values. A study fills it by field name from its ``model``, ``lora``,
    ``data`` and ``fitness`` sections (``evolora.orchestrator.assembly.task_spec``): a field named as the study's key
    is that key's value; the others say where they come from."""

    base: str = "minilm"
    kind: str = "encoder"
    device: str = "auto"
    rank: int = 4
    alpha: float = 8.0
    target_modules: tuple[str, ...] = ("query", "value")
    layers: tuple[int, ...] | None = None
    train_path: str = ""
    # validation data (or val_fraction); a study file's default: the packaged sts-dev
    dev_path: str | None = None
    # validation drawn from train (disjoint by content) instead of dev_path
    val_fraction: float | None = None
    val_sources: tuple[
        str, ...
    ] = ()  # with val_fraction: train pairs of these sources join validation whole
    test_path: str | None = None  # scored once at the end of a run; never chooses anything
    train_subset: int | None = 256
    dev_subset: int | None = None
    rotate: bool = False
    data_seed: int = 0
    batch_size: int = 64
    max_length: int = 128
    cache: bool | str = "auto"
    # keep the train sentences' trunk per sentence (True; "auto": if the model allows)
    trunk_memo: bool | str = False
    terms: tuple = (("stsb_spearman", 1.0),)  # (name, weight) or (name, weight, params)
    validation: str = "stsb_spearman"
    validation_params: dict = dataclasses.field(default_factory=dict)
    # (metric, params, max_drop, min): guards on validation the champion must stay within (no bounds: watched)
    budget: tuple = ()
    seed: int = 0  # for the LoRA A initialisation
    # block-type targeting (causal hybrids), see fitness.lora.block_targets
    blocks: dict | None = None
    train_genre: str | None = None  # causal data from an STS-B file: which genre's sentences
    dev_genre: str | None = None
    test_genre: str | None = None
    # causal data from an STS-B file: first N words → prompt, the rest → target
    prompt_words: int | None = None
    reference_path: str | None = None  # causal: texts for kl_to_base (default: the fitness texts)
    max_new_tokens: int = 16
    # several genomes per forward (batched deltas); None: 8 on CUDA, else 1
    genomes_per_forward: int | None = None
    # encoder: padding-free layers (``fitness.packed``; "auto": where the model allows)
    packed: bool | str = "auto"
    # fold each genome into the frozen weights (W₀ + s·B·A) instead of peft's LoRA path
    merge_weights: bool = True
    genome: str = "full"  # full: every LoRA A and B | xs: r×r cores between frozen SVD factors (fitness.genomes)
    init: str = "kaiming"  # LoRA A of a full genome: kaiming (peft's draw) | eva (inputs' principal directions)
    init_examples: int = 256  # eva: train examples whose inputs define the directions
    # eva: A moves only within the top-k input directions (fitness.genomes)
    a_subspace: int | None = None
    # value B moves only within the top-k directions its consumer reads (fitness.genomes)
    b_subspace: int | None = None
    objectives: tuple = ()  # (name, params): terms scored on validation for a Pareto sweep's champion
    # every data file's format (fitness.tables.FORMATS; auto: by its name and shape)
    format: str = "auto"
    columns: Columns = Columns()  # which data column holds what
    # pairs: the labels' scale (None: STS-B's, else the data's own)
    score_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_genome(self.genome, self.init, self.rank, self.a_subspace, self.b_subspace)


LISTED = {
    "fitness.terms": "name",
    "sweep.objectives": "metric",
    "validation.budget": "metric",
}  # list fields → the key naming the term


def make_term(
    name: str, params: dict, task: str, name_field: str, params_field: str
) -> FitnessTerm:
    """The one check of a term a study names, wherever it is named: registered (an installed plug-in loads
    here, the first time), scoring this kind of task, accepting its params → the term, built. ConfigError
    naming the field otherwise."""
    if name not in FITNESS_TERMS:
        raise ConfigError(
            name_field, f"unknown term; known: {', '.join(FITNESS_TERMS.names())}", name
        )
    try:
        cls = FITNESS_TERMS.get(name)
    except RegistryError as e:
        raise ConfigError(name_field, str(e), name) from None
    if cls.task != task:
        raise ConfigError(
            name_field, f"scores '{cls.task}' tasks, this study is a '{task}' task", name
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(params_field, str(e), params) from None


def make_terms(
    terms: Sequence[tuple], task: str, field: str = "fitness.terms"
) -> list[tuple[str, float, FitnessTerm]]:
    """(name, weight[, params]) → (name, weight, term instance); errors name ``field`` (list items by index)."""
    out = []
    for i, (name, weight, *rest) in enumerate(terms):
        params = rest[0] if rest else {}
        item = f"{field}.{i}" if field in LISTED else None
        name_path = f"{item}.{LISTED[field]}" if item else field
        out.append(
            (
                name,
                float(weight),
                make_term(name, params, task, name_path, f"{item or field}.params"),
            )
        )
    return out


def check_lengths(spec: TaskSpec, model) -> None:
    """``data.max_length`` (plus, for causal models, the generated tokens) within the model's positions: a
    longer text would fail inside the model, possibly only on the test split after the whole evolution."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    need = spec.max_length + (spec.max_new_tokens if spec.kind == "causal" else 0)
    if positions and need > positions:
        extra = (
            f" + fitness.max_new_tokens ({spec.max_new_tokens})" if spec.kind == "causal" else ""
        )
        raise ConfigError(
            "data.max_length",
            f"{spec.max_length}{extra} exceeds the model's {positions} positions",
            spec.max_length,
        )


def build_terms(spec: TaskSpec, kind: str) -> tuple[list, FitnessTerm, list, list]:
    """Every term a task scores: (fitness terms, the validation metric, Pareto objectives, guards — the budget's
    and the watched ones). Built before a model loads too, to fail early on bad names and params."""
    return (
        make_terms(spec.terms, kind),
        make_terms([(spec.validation, 1.0, spec.validation_params)], kind, "validation.metric")[0][
            2
        ],
        make_terms([(n, 1.0, p) for n, p in spec.objectives], kind, "sweep.objectives"),
        make_terms([(n, 1.0, p) for n, p, *_ in spec.budget], kind, "validation.budget"),
    )
