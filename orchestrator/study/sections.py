"""The study schema: one strict, frozen pydantic section per concern (model, lora, data, fitness,
validation, evolution, mlflow, ray, search, sweep). Reading a file into it is :mod:`.studyfile`'s job.
``resolved(cfg)`` is the single source of truth that is logged to MLflow and stored with each trial.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any, Literal

from pydantic import Field, model_validator

from evolora.evolution.errors import ConfigError
from evolora.fitness import PACKAGED_STSB, Columns
from evolora.fitness.spec import GENOMES, INITS, check_genome, make_term
from evolora.orchestrator.study.evolution import ESConfig, EvolutionConfig, SpeciationConfig
from evolora.orchestrator.study.strict import NAME, Strict
from evolora.orchestrator.study.sweep import ObjectiveConfig, SearchSpec, SweepConfig

__all__ = [
    "StudyConfig",
    "SearchSpec",
    "SweepConfig",
    "ObjectiveConfig",
    "LoraConfig",
    "EvolutionConfig",
    "ESConfig",
    "SpeciationConfig",
    "resolved",
    "BLOCK_MODULES",
    "NAME",
]


class ModelConfig(Strict):
    """The frozen base model: which one, where it runs, and how a population's forwards are computed."""

    base: str = Field(
        "minilm",
        description="'minilm' (packaged all-MiniLM-L6-v2), 'lfm2-tiny' / 'lfm2-demo' "
        "(built and cached by evolora), or a local HF model directory",
    )
    kind: Literal["encoder", "causal"] = Field(
        "encoder",
        description="'encoder' (sentence embeddings, pair tasks) "
        "or 'causal' (AutoModelForCausalLM: likelihood and generation tasks)",
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="'auto' uses CUDA when present"
    )
    threads: int | None = Field(
        None, ge=1, description="torch threads for this process (default: torch's own)"
    )
    genomes_per_forward: int | None = Field(
        None,
        ge=1,
        description="genomes scored together in one forward "
        "(batched low-rank deltas; null: 8 on CUDA, 1 on CPU)",
    )
    trunk_memo: Literal["auto", True, False] = Field(
        "auto",
        description="keep each train sentence's frozen-trunk states (the layers below the adapted ones) "
        "once computed, for batches that are many, small and new (encoder pair tasks; auto: with "
        "evolution.es.batches: per_pair when LoRA sits on a top slice of layers)",
    )
    packed: Literal["auto", True, False] = Field(
        "auto",
        description="encoder layers on the real tokens of all sentence batches at once, padding-free "
        "(fitness.packed; auto: where the model has BERT's layer structure; same embeddings to float rounding)",
    )
    merge_weights: bool = Field(
        True,
        description="fold each genome into the frozen weights (W0 + s·B·A) so a "
        "forward costs what the base model's does; false: peft's separate LoRA path",
    )


def _check_layers(path: str, layers: list[int] | None) -> None:
    if layers is not None:
        if any(i < 0 for i in layers):
            raise ConfigError(path, "layer indices must be ≥ 0", layers)
        if len(set(layers)) != len(layers):
            raise ConfigError(path, "layer indices must be unique", layers)


BLOCK_MODULES = {
    "attention": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "conv": ["in_proj", "out_proj"],
    "feed_forward": ["w1", "w2", "w3"],
}


class BlockConfig(Strict):
    """One block type of a hybrid causal model (LFM2: attention, short convolutions, feed-forward): whether and how it is adapted."""  # noqa: E501 (the schema's description, one line)

    enabled: bool = Field(True, description="adapt this block type at all (searchable: on/off)")
    modules: list[str] | None = Field(
        None, min_length=1, description="Linear modules of the block (default: all of them)"
    )
    rank: int | None = Field(
        None, ge=1, description="rank for this block type (default: lora.rank)"
    )
    alpha: float | None = Field(
        None, gt=0, description="alpha for this block type (default: lora.alpha)"
    )
    layers: list[int] | None = Field(
        None, min_length=1, description="layers (default: every layer with this block)"
    )


class LoraConfig(Strict):
    """The LoRA adapter a genome maps onto: rank, scaling, which modules of which layers, and what evolves."""

    rank: int = Field(4, ge=1, description="LoRA rank r")
    alpha: float = Field(8.0, gt=0, description="LoRA alpha (scaling = alpha / r)")
    target_modules: list[str] = Field(
        ["query", "value"], min_length=1, description="Linear module names to adapt"
    )
    layers: list[int] | None = Field(
        None, min_length=1, description="layer indices to adapt (default: all)"
    )
    genome: Literal[GENOMES] = Field(
        "full",
        description="what evolves: full = every LoRA A and B matrix; xs = LoRA-XS, one r×r core per adapted "
        "matrix between its weight's frozen truncated SVD factors (A = V_rᵀ, B = U_r Σ_r R), (in+out)/r times fewer "
        "genes; exports as a stock LoRA either way",
    )
    init: Literal[INITS] = Field(
        "kaiming",
        description="how each LoRA A starts (B starts at 0 either way, so generation 0 is the base "
        "model): kaiming = peft's random draw; eva = the top-r principal directions of the module's inputs on "
        "init_examples train examples (EVA), scaled to kaiming's output size: evolution then moves the outputs "
        "along the directions the inputs occupy. Full genomes only",
    )
    init_examples: int = Field(
        256, ge=1, description="lora.init: eva — train examples whose inputs set the directions"
    )
    a_subspace: int | None = Field(
        None,
        ge=1,
        description="lora.init: eva — LoRA A moves only within the top a_subspace principal directions "
        "of its module's inputs (A = R V_kᵀ; the genome holds the r×k coordinates R): no perturbation of A where "
        "the train inputs do not look. Between lora.rank and the module's input width; null: A moves freely",
    )
    b_subspace: int | None = Field(
        None,
        ge=1,
        description="each value projection's LoRA B moves only within the top b_subspace directions its "
        "output's consumer reads (the right singular vectors of the attention output projection; B = U_k Q, the "
        "genome holds the k×r coordinates Q): perturbations where a change of B reaches the layer's output. "
        "Value projections only; between lora.rank and the module's output width; null: B moves freely",
    )
    blocks: dict[Literal["attention", "conv", "feed_forward"], BlockConfig] | None = Field(
        None,
        description="block-type targeting for hybrid causal models (replaces target_modules/layers)",
    )

    @model_validator(mode="after")
    def _check(self):
        _check_layers("lora.layers", self.layers)
        for name, b in (self.blocks or {}).items():
            _check_layers(f"lora.blocks.{name}.layers", b.layers)
        if self.blocks is not None and not any(b.enabled for b in self.blocks.values()):
            raise ConfigError(
                "lora.blocks", "every block type is disabled", {k: False for k in self.blocks}
            )
        check_genome(self.genome, self.init, self.rank, self.a_subspace, self.b_subspace)
        return self


class ColumnsConfig(Strict):
    """Which column of the data holds what (null: the conventional name). Every other column reaches the
    fitness plug-ins under its own name."""

    sentence1: str | None = Field(
        None, min_length=1, description="pairs: first sentence (default column `sentence1`)"
    )
    sentence2: str | None = Field(
        None, min_length=1, description="pairs: second sentence (default `sentence2`)"
    )
    score: str | None = Field(
        None, min_length=1, description="pairs: gold similarity score (default `score`)"
    )
    source: str | None = Field(
        None,
        min_length=1,
        description="pairs: where each pair comes from, for per-source "
        "figures and data.val_sources (default `source`, if the data has one)",
    )
    prompt: str | None = Field(
        None, min_length=1, description="causal: the prompt (default `prompt`, if present)"
    )
    completion: str | None = Field(
        None,
        min_length=1,
        description="causal: the text scored by likelihood "
        "(default `completion`, else `target`, if present)",
    )
    answer: str | None = Field(
        None,
        min_length=1,
        description="causal: the expected answer, for exact_match and "
        "plug-ins (default `answer`, if present)",
    )


class DataConfig(Strict):
    """The three splits: fitness batches from train, validation (chooses the champion), test (scored once, chooses nothing)."""  # noqa: E501 (the schema's description, one line)

    train_path: str = Field(
        str(PACKAGED_STSB / "sts-train.csv"),
        description="fitness data (STS-B, CSV, TSV, JSON "
        "lines, Parquet or a datasets save_to_disk directory); relative to the study file",
    )
    dev_path: str | None = Field(
        None,
        description="validation data (any data.format). Default: the packaged "
        "sts-dev when train_path is the packaged sts-train; for your own train data, "
        "val_fraction 0.1 of it (never a packaged file)",
    )
    format: Literal["auto", "stsb", "csv", "tsv", "jsonl", "parquet", "hf"] = Field(
        "auto",
        description="format of every data file: auto = by each file's name (.csv, .tsv, .jsonl/.json, "
        ".parquet; a directory is a datasets save_to_disk one) and, for .csv/.tsv, its shape (no header, "
        "tab-separated, a number in column 5: STS-B)",
    )
    columns: ColumnsConfig = ColumnsConfig()
    val_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="draw this fraction of the distinct train "
        "examples (seeded by data.seed) as the validation split; they never reach a "
        "fitness batch. Excludes dev_path",
    )
    val_sources: list[str] | None = Field(
        None,
        min_length=1,
        description="with val_fraction, STS-B pairs: every "
        "train pair of these sources (column 2, e.g. deft-forum) joins the "
        "validation split and never reaches a fitness batch, so validation also "
        "measures sources fitness never saw",
    )
    test_path: str | None = Field(
        None,
        description="test data, scored once at the end of a run for the champion "
        "and the base model (test_<metric>, test_base, test_gain); never chooses anything",
    )
    train_subset: int | None = Field(
        256, ge=1, description="pairs per fitness batch (default 256; null: all)"
    )
    dev_subset: int | None = Field(
        None, ge=1, description="validation pairs (null: the whole dev split)"
    )
    rotate: bool = Field(
        False, description="draw a new fitness batch every generation (same batch within one)"
    )
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the subset draws")
    batch_size: int = Field(64, ge=1, description="sentences per forward pass")
    max_length: int = Field(128, ge=8, description="tokens per sentence (truncation)")
    train_genre: str | None = Field(
        None, description="causal, STS-B file: only sentences of this genre (e.g. main-news)"
    )
    dev_genre: str | None = Field(
        None, description="causal, STS-B file: genre of the validation sentences"
    )
    test_genre: str | None = Field(
        None, description="causal, STS-B file: genre of the test sentences (default: dev_genre)"
    )
    prompt_words: int | None = Field(
        None,
        ge=1,
        description="causal, STS-B file: the first N words of each sentence "
        "become its prompt and the rest its target (generation rewards need prompts); "
        "sentences of ≤ N words are left out. null: the whole sentence is the target",
    )
    reference_path: str | None = Field(
        None, description="causal: texts for kl_to_base (default: fitness texts)"
    )
    score_range: list[float] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="pairs: [lowest, highest] "
        "score of the labels' scale, e.g. [0, 1] or [0, 100] (terms that rescale "
        "labels read it; every label must lie within it). null: [0, 5] for STS-B "
        "files, else the lowest and highest label of train and validation",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.val_fraction is not None and self.dev_path is not None:
            raise ConfigError(
                "data.val_fraction",
                "validation comes either from dev_path or from train by "
                f"val_fraction, not both (dev_path is {self.dev_path}; set it to null)",
                self.val_fraction,
            )
        if self.score_range is not None and not self.score_range[0] < self.score_range[1]:
            raise ConfigError(
                "data.score_range",
                "must be [lowest, highest] with lowest < highest",
                self.score_range,
            )
        if self.val_sources is not None and self.val_fraction is None:
            raise ConfigError(
                "data.val_sources",
                "holds sources of train out as validation: it needs "
                "data.val_fraction (validation drawn from train)",
                self.val_sources,
            )
        return self


class TermConfig(Strict):
    """One fitness term: a registered name (built-in or a plug-in; `evolora terms` lists them), its weight and params."""  # noqa: E501 (the schema's description, one line)

    name: str = Field(description="a registered fitness term")
    weight: float = Field(1.0, description="weight in the combined fitness")
    params: dict[str, Any] = Field(
        {}, description="arguments of the term (e.g. keyword: {keywords: [...]})"
    )


class FitnessConfig(Strict):
    """What evolution climbs: a weighted sum of fitness terms, scored on train batches."""

    terms: list[TermConfig] = Field([TermConfig(name="stsb_spearman")], min_length=1)
    max_new_tokens: int = Field(
        16, ge=1, description="causal: greedy generation length for generation rewards"
    )


class GuardConfig(Strict):
    """A guard of a budgeted study: a registered term scored on the same held-out data as the validation
    metric; a genome whose guard leaves the budget cannot be the champion (it is logged as excluded, with why)."""

    metric: str = Field(..., description="a registered term, e.g. likelihood or kl_to_base")
    params: dict[str, Any] = Field({}, description="the term's parameters (as in fitness.terms)")
    max_drop: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="the guard may fall at most this "
        "far below the base model's value on the validation data",
    )
    min: float | None = Field(
        None, allow_inf_nan=False, description="the guard must stay at least this value"
    )

    @model_validator(mode="after")
    def _check(self):
        if self.max_drop is None and self.min is None:
            raise ConfigError(
                "validation.budget",
                f"a guard on {self.metric} needs max_drop or min (or both)",
                self.model_dump(exclude_defaults=True),
            )
        return self


class ValidationConfig(Strict):
    """What chooses the champion: a metric on held-out validation data, optionally within guards."""

    metric: str = Field(
        "stsb_spearman",
        description="registered term scored on the validation data (higher is "
        "better): what chooses the champion (a reward study: the reward on held-out prompts)",
    )
    params: dict[str, Any] = Field({}, description="the metric's parameters (as in fitness.terms)")
    every: int = Field(1, ge=1, description="validate the generation's best every k generations")
    budget: list[GuardConfig] = Field(
        [],
        description="guards the champion must keep within bounds on the same "
        "validation data, e.g. [{metric: likelihood, max_drop: 0.1}]: the champion "
        "is the best validation metric among the genomes within budget",
    )
    watch: list[ObjectiveConfig] = Field(
        [],
        description="more terms scored at each validation on the same "
        "held-out outputs and logged as val_<metric> (and on the test split at the "
        "end), choosing nothing: e.g. the likelihood in a study without a budget",
    )


class MlflowConfig(Strict):
    """Tracking: the experiment each run is logged under, and the Model Registry."""

    experiment: str = Field(
        "evolora",
        pattern=NAME,
        description="MLflow experiment (a name like the study's: it "
        "is also the directory of its artifacts in a local store)",
    )
    flush_every: int = Field(5, ge=1, description="generations between metric flushes")
    system_metrics: bool = Field(
        True, description="log CPU, memory (and GPU) as system/* metrics every 10 s"
    )
    registered_model: str | None = Field(
        None,
        pattern=NAME,
        description="Model Registry name champions are "
        "registered under, alias `champion` on the best (default: the study name)",
    )
    register_best: bool = Field(
        True, description="sweeps: register each new best trial's model, move the alias"
    )
    register_run: bool = Field(
        False,
        description="`evolora run`: register the run's champion as a version (as "
        "`--register` does); the alias moves to it if it beats the current one on validation",
    )


_RAY_ADDRESS = r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})$"


class RayConfig(Strict):
    """Population evaluation on Ray actors: each holds the task (model, data, trunk cache) and a replica of the
    strategy; a generation sends each what it needs to rebuild its genomes (ES: the fitness values and the
    generator's state) and gets fitness values back. Not part of a checkpoint's identity: a run may resume on
    another number of actors."""

    actors: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Ray actors scoring each generation (0: this process scores it)",
    )
    address: str | None = Field(
        None,
        description="null: a local Ray started by the trial "
        "(ray.init()); auto, host:port or ray://host:port: an existing cluster",
    )
    num_gpus: float = Field(
        0.0, ge=0, description="GPUs per actor (the batched-genomes path runs where it has one)"
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="torch threads per actor (default: model.threads, else 1); "
        "the same threads as one process gives the same result to the last bit",
    )
    retries: int = Field(
        3,
        ge=0,
        description="actors replaced within one generation before the trial fails "
        "(a cluster that went away)",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.actors and importlib.util.find_spec("ray") is None:
            raise ConfigError(
                "ray.actors", "needs the ray package (pip install 'ray>=2.40')", self.actors
            )
        if self.address is not None and not re.match(_RAY_ADDRESS, self.address):
            raise ConfigError(
                "ray.address",
                "must be auto, host:port or ray://host:port (null: a local Ray)",
                self.address,
            )
        if self.address is not None and not self.actors:
            raise ConfigError(
                "ray.address", "names a cluster for actors: set ray.actors ≥ 1", self.address
            )
        return self


def _check_term(name_field: str, params_field: str, name: str, params: dict, task: str) -> None:
    """A registered term, for this kind of task, that accepts its params (built here: terms are light)."""
    make_term(name, params, task, name_field, params_field)


def _check_terms(cfg: StudyConfig) -> None:
    """Every term the study names — fitness, validation, guards, watched, objectives — registered, for this
    kind of task, with params it accepts; each guard, watched term and objective once."""
    task = "causal" if cfg.model.kind == "causal" else "pairs"
    for i, t in enumerate(cfg.fitness.terms):
        _check_term(f"fitness.terms.{i}.name", f"fitness.terms.{i}.params", t.name, t.params, task)
    _check_term(
        "validation.metric", "validation.params", cfg.validation.metric, cfg.validation.params, task
    )
    seen: list[str] = []
    for field in ("budget", "watch"):
        for i, g in enumerate(getattr(cfg.validation, field)):
            where = f"validation.{field}.{i}"
            _check_term(f"{where}.metric", f"{where}.params", g.metric, g.params, task)
            if g.metric in seen:
                raise ConfigError(
                    f"{where}.metric", "each term once among validation.budget and watch", g.metric
                )
            seen.append(g.metric)
    names = [o.metric for o in cfg.sweep.objectives or ()]
    for i, o in enumerate(cfg.sweep.objectives or ()):
        _check_term(
            f"sweep.objectives.{i}.metric", f"sweep.objectives.{i}.params", o.metric, o.params, task
        )
        if o.metric in names[:i]:
            raise ConfigError(f"sweep.objectives.{i}.metric", "each objective once", o.metric)


def _check_per_pair(cfg: StudyConfig) -> None:
    """``evolution.es.batches: per_pair`` with the sections it reaches across (its own rules: ESParams)."""
    if cfg.evolution.es.batches != "per_pair":
        return
    if cfg.evolution.strategy != "openai-es":
        raise ConfigError(
            "evolution.es.batches",
            f"per_pair is an openai-es option (strategy is {cfg.evolution.strategy})",
            "per_pair",
        )
    if not cfg.data.rotate:
        raise ConfigError(
            "evolution.es.batches",
            "per_pair draws a batch per pair and generation: it needs data.rotate: true",
            "per_pair",
        )


def _check_xs(cfg: StudyConfig) -> None:
    """``lora.genome: xs`` against the evolution options that read LoRA A and B (its LoRA rules: check_genome)."""
    if cfg.lora.genome != "xs":
        return
    e = cfg.evolution
    if e.strategy == "openai-es" and e.es.perturb == "B":
        raise ConfigError(
            "evolution.es.perturb",
            "B selects LoRA B factors; with lora.genome: xs every gene is a core (use all)",
            "B",
        )
    if e.strategy == "openai-es" and e.es.a_scale != 1:
        raise ConfigError(
            "evolution.es.a_scale",
            "scales the LoRA A genes; with lora.genome: xs every gene is a core (use 1)",
            e.es.a_scale,
        )
    if e.speciation.enabled and e.speciation.distance == "delta_l2":
        raise ConfigError(
            "evolution.speciation.distance",
            "delta_l2 reads LoRA A and B; with lora.genome: xs use l2 or cosine",
            "delta_l2",
        )


class StudyConfig(Strict):
    name: str = Field(
        "evolora",
        pattern=NAME,
        description="the study's name: its Optuna study, its checkpoint "
        "directory and its registered model (letters, digits, _ . -; starting with a letter or digit; "
        "at most 100 characters)",
    )
    seed: int = Field(
        0, ge=0, lt=2**63, description="trial seed: every random draw derives from it"
    )
    model: ModelConfig = ModelConfig()
    lora: LoraConfig = LoraConfig()
    data: DataConfig = DataConfig()
    fitness: FitnessConfig = FitnessConfig()
    validation: ValidationConfig = ValidationConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    mlflow: MlflowConfig = MlflowConfig()
    ray: RayConfig = RayConfig()
    search: dict[str, SearchSpec] = Field(
        {}, description="config path → search-space entry (for `evolora sweep`)"
    )
    sweep: SweepConfig = SweepConfig()

    @model_validator(mode="after")
    def _check(self):
        """The rules that reach across sections. No file is read here: the data are checked where they are
        loaded (:func:`fitness.build.load_data`), once."""
        if self.lora.blocks is not None and self.model.kind != "causal":
            raise ConfigError(
                "lora.blocks",
                "block-type targeting is for hybrid causal models (model.kind: causal); "
                "an encoder adapts lora.target_modules of lora.layers",
                sorted(self.lora.blocks),
            )
        _check_terms(self)
        _check_per_pair(self)
        _check_xs(self)
        if self.model.trunk_memo is True and self.model.kind != "encoder":
            raise ConfigError("model.trunk_memo", "the trunk memo is for encoder pair tasks", True)
        if self.data.val_sources is not None and self.model.kind != "encoder":
            raise ConfigError(
                "data.val_sources",
                "holds out sources of sentence pairs: an encoder pair task "
                f"(model.kind is {self.model.kind})",
                self.data.val_sources,
            )
        return self


def columns(data: DataConfig) -> Columns:
    """The study's column mapping as the data loaders take it."""
    return Columns(**data.columns.model_dump())


def resolved(cfg: StudyConfig) -> dict:
    """The fully concrete config as plain data: what is logged and stored."""
    return cfg.model_dump(mode="json")
