"""Study files: YAML (safe loader) → typed, validated config, with ``--set PATH=VALUE`` overrides.

Every error names the dotted config path and the bad value (``evolution.mutation_sigma: must be > 0, got
-0.1``) and is raised before anything is written anywhere. ``resolved(cfg)`` is the single source of truth
that is logged to MLflow and stored with each trial.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evolution import GAParams
from evolution.errors import ConfigError
from evolution.es import ESParams
from evolution.speciation import SpeciationParams
from fitness import FITNESS_TERMS, PACKAGED_STSB

# One source of defaults: each section's fields that the evolution packages' parameter dataclasses also have
# take their defaults from those dataclasses (the runner builds the dataclasses from these sections by name).
_GA, _ES, _SP = GAParams(), ESParams(), SpeciationParams()

__all__ = ["StudyConfig", "SearchSpec", "SweepConfig", "load_study", "parse_study", "apply_overrides", "resolved",
           "with_values", "check_search", "BLOCK_MODULES"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    base: str = Field("minilm", description="'minilm' (packaged all-MiniLM-L6-v2), 'lfm2-tiny' / 'lfm2-demo' "
                      "(built and cached by evolora), or a local HF model directory")
    kind: Literal["encoder", "causal"] = Field("encoder", description="'encoder' (sentence embeddings, pair tasks) "
                                               "or 'causal' (AutoModelForCausalLM: likelihood and generation tasks)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="'auto' uses CUDA when present")
    threads: int | None = Field(None, ge=1, description="torch threads for this process (default: torch's own)")
    genomes_per_forward: int | None = Field(None, ge=1, description="genomes scored together in one forward "
                                            "(batched low-rank deltas; null: 8 on CUDA, 1 on CPU)")
    merge_weights: bool = Field(True, description="fold each genome into the frozen weights (W0 + s·B·A) so a "
                                "forward costs what the base model's does; false: peft's separate LoRA path")


def _check_layers(path: str, layers: list[int] | None) -> None:
    if layers is not None:
        if any(i < 0 for i in layers):
            raise ConfigError(path, "layer indices must be ≥ 0", layers)
        if len(set(layers)) != len(layers):
            raise ConfigError(path, "layer indices must be unique", layers)


BLOCK_MODULES = {"attention": ["q_proj", "k_proj", "v_proj", "out_proj"], "conv": ["in_proj", "out_proj"],
                 "feed_forward": ["w1", "w2", "w3"]}


class BlockConfig(_Strict):
    enabled: bool = Field(True, description="adapt this block type at all (searchable: on/off)")
    modules: list[str] | None = Field(None, min_length=1, description="Linear modules of the block (default: all of them)")
    rank: int | None = Field(None, ge=1, description="rank for this block type (default: lora.rank)")
    alpha: float | None = Field(None, gt=0, description="alpha for this block type (default: lora.alpha)")
    layers: list[int] | None = Field(None, min_length=1, description="layers (default: every layer with this block)")


class LoraConfig(_Strict):
    rank: int = Field(4, ge=1, description="LoRA rank r")
    alpha: float = Field(8.0, gt=0, description="LoRA alpha (scaling = alpha / r)")
    target_modules: list[str] = Field(["query", "value"], min_length=1, description="Linear module names to adapt")
    layers: list[int] | None = Field(None, min_length=1, description="layer indices to adapt (default: all)")
    blocks: dict[Literal["attention", "conv", "feed_forward"], BlockConfig] | None = Field(
        None, description="block-type targeting for hybrid causal models (replaces target_modules/layers)")

    @model_validator(mode="after")
    def _check(self):
        _check_layers("lora.layers", self.layers)
        for name, b in (self.blocks or {}).items():
            _check_layers(f"lora.blocks.{name}.layers", b.layers)
        if self.blocks is not None and not any(b.enabled for b in self.blocks.values()):
            raise ConfigError("lora.blocks", "every block type is disabled", {k: False for k in self.blocks})
        return self


class DataConfig(_Strict):
    train_path: str = Field(str(PACKAGED_STSB / "sts-train.csv"), description="fitness pairs (STS-B format); relative to the study file")
    dev_path: str | None = Field(None, description="validation data (STS-B format or, causal, JSON lines); default: "
                                 "the packaged sts-dev, unless val_fraction draws validation from train")
    val_fraction: float | None = Field(None, gt=0, lt=1, description="draw this fraction of the distinct train "
                                       "examples (seeded by data.seed) as the validation split; they never reach a "
                                       "fitness batch. Excludes dev_path")
    test_path: str | None = Field(None, description="test data, scored once at the end of a run for the champion "
                                  "and the base model (test_<metric>, test_base, test_gain); never chooses anything")
    train_subset: int | None = Field(256, ge=1, description="pairs per fitness batch (default 256; null: all)")
    dev_subset: int | None = Field(None, ge=1, description="validation pairs (null: the whole dev split)")
    rotate: bool = Field(False, description="draw a new fitness batch every generation (same batch within one)")
    seed: int = Field(0, ge=0, description="seed of the subset draws")
    batch_size: int = Field(64, ge=1, description="sentences per forward pass")
    max_length: int = Field(128, ge=8, description="tokens per sentence (truncation)")
    train_genre: str | None = Field(None, description="causal, STS-B file: only sentences of this genre (e.g. main-news)")
    dev_genre: str | None = Field(None, description="causal, STS-B file: genre of the validation sentences")
    test_genre: str | None = Field(None, description="causal, STS-B file: genre of the test sentences (default: dev_genre)")
    reference_path: str | None = Field(None, description="causal: texts for kl_to_base (default: fitness texts)")

    @model_validator(mode="after")
    def _check(self):
        if self.val_fraction is not None and self.dev_path is not None:
            raise ConfigError("data.val_fraction", "validation comes either from dev_path or from train by "
                              f"val_fraction, not both (dev_path is {self.dev_path}; set it to null)", self.val_fraction)
        return self


class TermConfig(_Strict):
    name: str = Field(description="a registered fitness term")
    weight: float = Field(1.0, description="weight in the combined fitness")
    params: dict[str, Any] = Field({}, description="arguments of the term (e.g. keyword: {keywords: [...]})")


class FitnessConfig(_Strict):
    terms: list[TermConfig] = Field([TermConfig(name="stsb_spearman")], min_length=1)
    max_new_tokens: int = Field(16, ge=1, description="causal: greedy generation length for generation rewards")


class ValidationConfig(_Strict):
    metric: str = Field("stsb_spearman", description="registered term scored on the dev data (higher is better)")
    every: int = Field(1, ge=1, description="validate the generation's best every k generations")


class SpeciationConfig(_Strict):
    enabled: bool = Field(False, description="NEAT-style speciation of the GA population")
    distance: Literal["l2", "cosine", "delta_l2"] = Field(_SP.distance, description="compatibility distance: RMS gene "
                                                          "difference, 1 − cosine, or RMS difference of the LoRA deltas B·A")
    threshold: float | None = Field(_SP.threshold, gt=0, description="initial compatibility threshold, adapted each "
                                    "generation toward target_species (null: the first population's mean distance)")
    target_species: int = Field(_SP.target_species, ge=1, description="the threshold moves toward this many species")
    threshold_step: float = Field(_SP.threshold_step, gt=0, lt=1, description="relative threshold change per generation")
    stagnation: int = Field(_SP.stagnation, ge=1, description="generations without improvement before a species is removed")
    sharing: bool = Field(_SP.sharing, description="explicit fitness sharing (adjusted fitness = fitness / species size)")
    elitism: int = Field(_SP.elitism, ge=0, description="best members of each species copied unchanged")


class ESConfig(_Strict):
    sigma: float = Field(_ES.sigma, gt=0, description="perturbation std (openai-es) / initial step size (sep-cma-es)")
    learning_rate: float = Field(_ES.learning_rate, gt=0, description="openai-es: step size of the optimiser on the mean")
    optimizer: Literal["adam", "sgd", "momentum"] = Field(_ES.optimizer, description="openai-es: update of the mean")
    momentum: float = Field(_ES.momentum, ge=0, lt=1, description="openai-es, optimizer=momentum: heavy-ball coefficient")
    weight_decay: float = Field(_ES.weight_decay, ge=0)
    shaping: Literal["centered_rank", "zscore"] = Field(
        _ES.shaping, description="openai-es fitness shaping: centred ranks, or antithetic differences "
        "f(θ+σε) − f(θ−σε) divided by their RMS over the pairs (SPSA/MeZO-like, scale-free)")
    schedule: Literal["constant", "cosine"] = Field(
        _ES.schedule, description="openai-es: learning rate and σ constant, or decayed along a half cosine over "
        "evolution.generations to lr_final × learning_rate and sigma_final × sigma")
    lr_final: float = Field(_ES.lr_final, ge=0, le=1, description="cosine schedule: final learning rate / learning_rate")
    sigma_final: float = Field(_ES.sigma_final, gt=0, le=1, description="cosine schedule: final σ / sigma")
    perturb: Literal["all", "B"] = Field(
        _ES.perturb, description="openai-es: perturb every gene, or only the LoRA B factors (A stays at its "
        "initialisation; at B = 0 a change of A does nothing to first order, so perturbing it is pure noise)")


class EvolutionConfig(_Strict):
    strategy: Literal["ga", "openai-es", "sep-cma-es"] = Field(
        "ga", description="ga: DEAP GA (optionally speciated); openai-es: antithetic ES with rank shaping and Adam; "
        "sep-cma-es: diagonal CMA-ES (cma package). ES variants validate the distribution mean.")
    population: int = Field(_GA.population, ge=2)
    generations: int = Field(10, ge=1, description="generations including generation 0")
    tournament_size: int = Field(_GA.tournament_size, ge=1)
    elitism: int = Field(_GA.elitism, ge=0, description="best individuals copied unchanged into the next generation")
    crossover_prob: float = Field(_GA.crossover_prob, ge=0, le=1)
    mutation_prob: float = Field(_GA.mutation_prob, ge=0, le=1)
    mutation_sigma: float = Field(_GA.mutation_sigma, gt=0, description="std of the Gaussian mutation")
    gene_prob: float = Field(_GA.gene_prob, gt=0, le=1, description="probability that a gene is mutated")
    blend_alpha: float = Field(_GA.blend_alpha, ge=0, description="BLX-alpha crossover extent")
    hall_of_fame: int = Field(1, ge=1)
    speciation: SpeciationConfig = SpeciationConfig()
    es: ESConfig = ESConfig()

    @model_validator(mode="after")
    def _check(self):
        if self.strategy == "openai-es" and self.population < 2:
            raise ConfigError("evolution.population", "openai-es needs ≥ 2 (antithetic pairs)", self.population)
        if self.speciation.enabled and self.strategy != "ga":
            raise ConfigError("evolution.speciation.enabled", f"speciation applies to the ga strategy, not {self.strategy}", True)
        if self.tournament_size > self.population:
            raise ConfigError("evolution.tournament_size", f"must be ≤ evolution.population ({self.population})", self.tournament_size)
        if self.elitism >= self.population:
            raise ConfigError("evolution.elitism", f"must be < evolution.population ({self.population})", self.elitism)
        return self


class MlflowConfig(_Strict):
    experiment: str = Field("evolora", min_length=1)
    flush_every: int = Field(5, ge=1, description="generations between metric flushes")
    system_metrics: bool = Field(True, description="log CPU, memory (and GPU) as system/* metrics every 10 s")
    registered_model: str | None = Field(None, min_length=1, description="Model Registry name a sweep registers its "
                                         "champions under, alias `champion` on the best (default: the study name)")
    register_best: bool = Field(True, description="sweeps: register each new best trial's model, move the alias")


class SearchSpec(_Strict):
    """One searched config path: ``{type: float, low: 0.005, high: 0.1, log: true}``,
    ``{type: int, low: 8, high: 32, step: 8}`` or ``{type: categorical, choices: [[4, 5], [5]]}``."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = None
    when: dict[str, list[Any]] | None = Field(
        None, description="sample this entry only if each named config path (searched earlier, or fixed in the "
        "file) holds one of the listed values, e.g. {evolution.strategy: [ga]}; otherwise the file's value stays "
        "and the trial records no parameter for it (Optuna's define-by-run)")

    def check(self, path: str) -> None:
        where = f"search.{path}"
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}.choices", "must be a non-empty list", self.choices)
            if self.low is not None or self.high is not None:
                raise ConfigError(where, "categorical takes `choices`, not low/high", self.model_dump(exclude_none=True))
            return
        if self.choices is not None:
            raise ConfigError(f"{where}.choices", f"only for categorical, not {self.type}", self.choices)
        if self.low is None or self.high is None:
            raise ConfigError(where, f"{self.type} needs `low` and `high`", self.model_dump(exclude_none=True))
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ConfigError(where, "int bounds must be integers", [self.low, self.high])
        if not self.low < self.high:
            raise ConfigError(f"{where}.low", f"must be < high ({self.high})", self.low)
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}.low", "must be > 0 on a log scale", self.low)
        if self.log and self.step is not None:
            raise ConfigError(f"{where}.step", "cannot be combined with log", self.step)

    def extremes(self) -> list[Any]:
        """Values that must each give a valid config (checked at load time)."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


class SweepConfig(_Strict):
    direction: Literal["maximize", "minimize"] = Field("maximize", description="of the validation metric")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_warmup: int = Field(2, ge=0, description="generations before pruning may start (median pruner)")
    report_every: int = Field(2, ge=1, description="report the validation metric to Optuna every k generations")
    stale_after: float = Field(300.0, gt=0, description="seconds without heartbeat (a background thread beats "
                               "every stale_after/4, at most every 30 s) before a RUNNING trial of "
                                "another host is declared dead (same-host dead workers are detected at once)")
    max_retries: int = Field(2, ge=0, description="retries of a trial whose worker died")


class StudyConfig(_Strict):
    name: str = Field("evolora", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(0, ge=0, description="trial seed: every random draw derives from it")
    model: ModelConfig = ModelConfig()
    lora: LoraConfig = LoraConfig()
    data: DataConfig = DataConfig()
    fitness: FitnessConfig = FitnessConfig()
    validation: ValidationConfig = ValidationConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    mlflow: MlflowConfig = MlflowConfig()
    search: dict[str, SearchSpec] = Field({}, description="config path → search-space entry (for `evolora sweep`)")
    sweep: SweepConfig = SweepConfig()

    @model_validator(mode="after")
    def _check(self):
        for i, t in enumerate(self.fitness.terms):
            if t.name not in FITNESS_TERMS:
                raise ConfigError(f"fitness.terms.{i}.name", f"unknown fitness term; known: {', '.join(FITNESS_TERMS.names())}", t.name)
        if self.validation.metric not in FITNESS_TERMS:
            raise ConfigError("validation.metric", f"unknown metric; known: {', '.join(FITNESS_TERMS.names())}", self.validation.metric)
        for field in ("train_path", "dev_path", "test_path", "reference_path"):
            p = getattr(self.data, field)
            if p is not None and not Path(p).is_file():
                raise ConfigError(f"data.{field}", "data file not found", p)
        return self


def _format(err: ValidationError) -> ConfigError:
    e = err.errors()[0]
    path = ".".join(str(x) for x in e["loc"]) or "<study>"
    msg = e["msg"]
    if isinstance(e.get("ctx", {}).get("error"), ConfigError):
        return e["ctx"]["error"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key" + _did_you_mean(e["loc"])
    return ConfigError(path, msg, e.get("input"))


def _did_you_mean(loc: tuple) -> str:
    """' (did you mean population?)' for a misspelt key, from the valid keys of its section."""
    import difflib

    model: Any = StudyConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        ann = field.annotation
        model = next((a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(getattr(model, "model_fields", {})), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _set_path(raw: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    node: Any = raw
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise ConfigError(path, f"no list item {k!r}")
            k = int(k)
        elif not isinstance(node, dict):
            raise ConfigError(path, f"{'.'.join(keys[:i])} is not a mapping")
        if last:
            node[k] = value
        else:
            if isinstance(node, dict) and k not in node:
                node[k] = {}
            node = node[k]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``PATH=VALUE`` strings (VALUE parsed as YAML) to a raw study dict; returns a new dict."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError("--set", "expected PATH=VALUE", item)
        path, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(path, "value is not valid YAML", text) from None
        _set_path(raw, path.strip(), value)
    return raw


def _resolve_paths(raw: dict, base_dir: Path) -> dict:
    data = raw.get("data")
    if isinstance(data, dict) and data.get("dev_path") is None and data.get("val_fraction") is None:
        data["dev_path"] = str(PACKAGED_STSB / "sts-dev.csv")  # the default validation file, made explicit
    if isinstance(data, dict):
        for field in ("train_path", "dev_path", "test_path", "reference_path"):
            if isinstance(data.get(field), str):
                data[field] = str((base_dir / Path(data[field]).expanduser()).resolve())
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("base"), str) and model["base"] not in ("minilm", "lfm2-tiny", "lfm2-demo"):
        p = Path(model["base"]).expanduser()
        if not p.is_absolute() and (base_dir / p).exists():
            model["base"] = str((base_dir / p).resolve())
    return raw


def _merge(defaults: dict, raw: dict) -> dict:
    """The study's values over the defaults (so ``--set`` can reach a default list item); lists replace."""
    out = dict(defaults)
    for k, v in raw.items():
        out[k] = _merge(defaults[k], v) if isinstance(v, dict) and isinstance(defaults.get(k), dict) else v
    return out


def parse_study(raw: Any, base_dir: Path = Path("."), overrides: list[str] = (), seed: int | None = None) -> StudyConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("<study>", "a study file must be a YAML mapping", type(raw).__name__)
    raw = apply_overrides(_merge(StudyConfig().model_dump(mode="json"), raw), list(overrides))
    if seed is not None:
        raw["seed"] = seed
    raw = _resolve_paths(raw, base_dir)
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise _format(err) from None
    pinned = {item.split("=", 1)[0].strip() for item in overrides}
    if pinned & set(cfg.search):  # a --set on a searched path fixes it
        cfg = cfg.model_copy(update={"search": {k: v for k, v in cfg.search.items() if k not in pinned}})
    check_search(cfg)
    return cfg


def leaf_paths(d: dict, prefix: str = "") -> set[str]:
    """Every settable path: mapping keys, whole lists, and fields of list items (``fitness.terms.0.weight``)."""
    out = set()
    for k, v in d.items():
        if isinstance(v, dict):
            out |= leaf_paths(v, f"{prefix}{k}.")
            continue
        out.add(f"{prefix}{k}")
        if isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    out |= leaf_paths(item, f"{prefix}{k}.{i}.")
    return out


def with_values(cfg: StudyConfig, values: dict[str, Any]) -> StudyConfig:
    """``cfg`` with config paths set to values (a trial's sampled params), validated like the file."""
    raw = resolved(cfg)
    for path, value in values.items():
        _set_path(raw, path, value)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise _format(err) from None


def check_search(cfg: StudyConfig) -> None:
    """Every search entry: valid bounds, an existing config path, and each extreme value valid there."""
    leaves = leaf_paths({k: v for k, v in resolved(cfg).items() if k not in ("search", "sweep")})
    order = list(cfg.search)
    for i, (path, spec) in enumerate(cfg.search.items()):
        if path not in leaves:
            raise ConfigError(f"search.{path}", "not a config path", path)
        spec.check(path)
        for cond, accepted in (spec.when or {}).items():
            if cond not in leaves:
                raise ConfigError(f"search.{path}.when", "not a config path", cond)
            if not accepted:
                raise ConfigError(f"search.{path}.when.{cond}", "must list at least one value", accepted)
            if cond in cfg.search and order.index(cond) >= i:
                raise ConfigError(f"search.{path}.when", "a condition on a searched path must come after that "
                                  "path in `search` (entries are sampled in file order)", cond)
        context = _where_sampled(cfg, path)
        for v in spec.extremes():
            try:
                with_values(cfg, {**context, path: v})
            except ConfigError as e:
                raise ConfigError(f"search.{path}", f"contains an invalid value: {e}") from None


def _where_sampled(cfg: StudyConfig, path: str) -> dict[str, Any]:
    """Config values under which the search entry at ``path`` is sampled: its conditions' first accepted
    values, and theirs in turn (a condition on a conditional entry)."""
    out: dict[str, Any] = {}
    todo = [path]
    while todo:
        spec = cfg.search.get(todo.pop())
        for c, accepted in ((spec.when or {}).items() if spec else ()):
            if c not in out:
                out[c] = accepted[0]
                todo.append(c)
    return out


def load_raw(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("STUDY", "study file not found", str(path))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError("<study>", f"not valid YAML: {e}", str(path)) from None
    if raw is None:  # empty, or comments only: never a silent run of all defaults
        raise ConfigError("<study>", "study file is empty", str(path))
    return raw


def load_study(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> StudyConfig:
    return parse_study(load_raw(path), Path(path).resolve().parent, overrides, seed)


def resolved(cfg: StudyConfig) -> dict:
    """The fully concrete config as plain data: what is logged and stored."""
    return cfg.model_dump(mode="json")
