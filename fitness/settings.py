"""A task's settings by section, each declared once here — type, default, description, constraints — as the
study file's ``model``, ``lora``, ``data`` and ``fitness`` keys of their names: the orchestrator generates those
sections from these declarations (:mod:`evolora.orchestrator.study.model`, ``.data``, ``.sections``) and builds
these dataclasses back from them by name. A field declared without :func:`~evolora.evolution.options.option` is
the code's own (a study file sets it through a section key of other semantics, or not at all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evolora.evolution.errors import ConfigError
from evolora.evolution.options import option
from evolora.fitness.pairs import PACKAGED_STSB
from evolora.fitness.tables import FORMATS, Columns

__all__ = [
    "ModelSettings",
    "LoraSettings",
    "DataSettings",
    "FitnessSettings",
    "GENOMES",
    "INITS",
    "DEVICE",
    "check_genome",
]

GENOMES = ("full", "xs")  # lora.genome: what evolves (fitness.genomes)
INITS = ("kaiming", "eva")  # lora.init: how a full genome's LoRA A starts
DEVICE = r"^(auto|cpu|cuda(:\d+)?|mps)$"


@dataclass(frozen=True)
class ModelSettings:
    """The frozen base model: which one, where it runs, and how a population's forwards are computed."""

    base: str = option(
        "minilm",
        "'minilm' (packaged all-MiniLM-L6-v2), 'lfm2-tiny' / 'lfm2-demo' / 'lfm2-arith' "
        "(built and cached by evolora), or a local HF model directory",
    )
    kind: Literal["encoder", "causal"] = option(
        "encoder",
        "'encoder' (sentence embeddings, pair tasks) "
        "or 'causal' (AutoModelForCausalLM: likelihood and generation tasks)",
    )
    device: str = option("auto", "'auto' uses CUDA when present", pattern=DEVICE)
    genomes_per_forward: int | None = option(
        None,
        "genomes scored together in one forward "
        "(batched low-rank deltas; null: 8 on CUDA, 1 on CPU)",
        ge=1,
    )
    # keep the train sentences' trunk per sentence: True (required), "auto" (if the model allows), False. The
    # study's model.trunk_memo means something else by "auto" (on where it pays): the assembly resolves it
    trunk_memo: bool | str = False
    packed: Literal["auto", True, False] = option(
        "auto",
        "encoder layers on the real tokens of all sentence batches at once, padding-free "
        "(fitness.packed; auto: where the model has BERT's layer structure; same embeddings to float rounding)",
    )
    merge_weights: bool = option(
        True,
        "fold each genome into the frozen weights (W0 + s·B·A) so a "
        "forward costs what the base model's does; false: peft's separate LoRA path",
    )
    # keep the frozen trunk's states (the layers below the adapted ones) per batch: True, "auto" (where LoRA
    # sits on a top slice of layers) or False
    cache: bool | str = "auto"


def check_genome(
    genome: str, init: str, rank: int, a_subspace: int | None, b_subspace: int | None
) -> None:
    """The rules of what evolves (``lora.genome``, ``init``, ``a_subspace``, ``b_subspace``), in one place: a
    :class:`LoraSettings` checks them when made, the study file's schema by calling this. What depends on the
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
class LoraSettings:
    """The LoRA adapter a genome maps onto: rank, scaling, which modules of which layers, and what evolves."""

    rank: int = option(4, "LoRA rank r", ge=1)
    alpha: float = option(8.0, "LoRA alpha (scaling = alpha / r)", gt=0)
    target_modules: tuple[str, ...] = option(
        ("query", "value"), "Linear module names to adapt", min_length=1
    )
    layers: tuple[int, ...] | None = option(
        None, "layer indices to adapt (default: all)", min_length=1
    )
    genome: Literal[GENOMES] = option(
        "full",
        "what evolves: full = every LoRA A and B matrix; xs = LoRA-XS, one r×r core per adapted "
        "matrix between its weight's frozen truncated SVD factors (A = V_rᵀ, B = U_r Σ_r R), (in+out)/r times fewer "
        "genes; exports as a stock LoRA either way",
    )
    init: Literal[INITS] = option(
        "kaiming",
        "how each LoRA A starts (B starts at 0 either way, so generation 0 is the base "
        "model): kaiming = peft's random draw; eva = the top-r principal directions of the module's inputs on "
        "init_examples train examples (EVA), scaled to kaiming's output size: evolution then moves the outputs "
        "along the directions the inputs occupy. Full genomes only",
    )
    init_examples: int = option(
        256, "lora.init: eva — train examples whose inputs set the directions", ge=1
    )
    a_subspace: int | None = option(
        None,
        "lora.init: eva — LoRA A moves only within the top a_subspace principal directions "
        "of its module's inputs (A = R V_kᵀ; the genome holds the r×k coordinates R): no perturbation of A where "
        "the train inputs do not look. Between lora.rank and the module's input width; null: A moves freely",
        ge=1,
    )
    b_subspace: int | None = option(
        None,
        "each value projection's LoRA B moves only within the top b_subspace directions its "
        "output's consumer reads (the right singular vectors of the attention output projection; B = U_k Q, the "
        "genome holds the k×r coordinates Q): perturbations where a change of B reaches the layer's output. "
        "Value projections only; between lora.rank and the module's output width; null: B moves freely",
        ge=1,
    )
    # block-type targeting of hybrid causal models, resolved: block type → {modules, rank, alpha, layers}
    # (fitness.lora.block_targets); the study's lora.blocks, with its defaults filled in by the assembly
    blocks: dict | None = None

    def __post_init__(self) -> None:
        check_genome(self.genome, self.init, self.rank, self.a_subspace, self.b_subspace)


@dataclass(frozen=True)
class DataSettings:
    """The three splits: fitness batches from train, validation (chooses the champion), test (scored once, chooses nothing)."""  # noqa: E501 (the schema's description, one line)

    train_path: str = option(
        str(PACKAGED_STSB / "sts-train.csv"),
        "fitness data (STS-B, CSV, TSV, JSON "
        "lines, Parquet or a datasets save_to_disk directory); relative to the study file",
    )
    dev_path: str | None = option(
        None,
        "validation data (any data.format). Default: the packaged "
        "sts-dev when train_path is the packaged sts-train; for your own train data, "
        "val_fraction 0.1 of it (never a packaged file)",
    )
    format: Literal[FORMATS] = option(
        "auto",
        "format of every data file: auto = by each file's name (.csv, .tsv, .jsonl/.json, "
        ".parquet; a directory is a datasets save_to_disk one) and, for .csv/.tsv, its shape (no header, "
        "tab-separated, a number in column 5: STS-B)",
    )
    columns: Columns = Columns()
    val_fraction: float | None = option(
        None,
        "draw this fraction of the distinct train "
        "examples (seeded by data.seed) as the validation split; they never reach a "
        "fitness batch. Excludes dev_path",
        gt=0,
        lt=1,
    )
    val_sources: tuple[str, ...] | None = option(
        None,
        "with val_fraction, STS-B pairs: every "
        "train pair of these sources (column 2, e.g. deft-forum) joins the "
        "validation split and never reaches a fitness batch, so validation also "
        "measures sources fitness never saw",
        min_length=1,
    )
    test_path: str | None = option(
        None,
        "test data, scored once at the end of a run for the champion "
        "and the base model (test_<metric>, test_base, test_gain); never chooses anything",
    )
    train_subset: int | None = option(256, "pairs per fitness batch (default 256; null: all)", ge=1)
    dev_subset: int | None = option(None, "validation pairs (null: the whole dev split)", ge=1)
    rotate: bool = option(
        False, "draw a new fitness batch every generation (same batch within one)"
    )
    seed: int = option(0, "seed of the subset draws", ge=0, lt=2**63)
    batch_size: int = option(64, "sentences per forward pass", ge=1)
    max_length: int = option(128, "tokens per sentence (truncation)", ge=8)
    train_genre: str | None = option(
        None, "causal, STS-B file: only sentences of this genre (e.g. main-news)"
    )
    dev_genre: str | None = option(None, "causal, STS-B file: genre of the validation sentences")
    test_genre: str | None = option(
        None, "causal, STS-B file: genre of the test sentences (default: dev_genre)"
    )
    prompt_words: int | None = option(
        None,
        "causal, STS-B file: the first N words of each sentence "
        "become its prompt and the rest its target (generation rewards need prompts); "
        "sentences of ≤ N words are left out. null: the whole sentence is the target",
        ge=1,
    )
    reference_path: str | None = option(
        None, "causal: texts for kl_to_base (default: fitness texts)"
    )
    score_range: tuple[float, float] | None = option(
        None,
        "pairs: [lowest, highest] "
        "score of the labels' scale, e.g. [0, 1] or [0, 100] (terms that rescale "
        "labels read it; every label must lie within it). null: [0, 5] for STS-B "
        "files, else the lowest and highest label of train and validation",
        min_length=2,
        max_length=2,
    )


def check_sampling(temperature: float, completions: int) -> None:
    """More than one continuation a prompt needs draws: greedy ones would be the same text k times."""
    if completions > 1 and temperature == 0:
        raise ConfigError(
            "fitness.completions",
            "more than one continuation a prompt needs fitness.temperature > 0 (greedy ones are equal)",
            completions,
        )


@dataclass(frozen=True)
class FitnessSettings:
    """What evolution climbs: a weighted sum of fitness terms, scored on train batches."""

    # (name, weight) or (name, weight, params): the study's fitness.terms as plain values
    terms: tuple = (("stsb_spearman", 1.0),)
    max_new_tokens: int = option(
        16, "causal: greedy generation length for generation rewards", ge=1
    )
    chat_template: bool = option(
        False,
        "causal: feed each prompt as one user turn through the tokenizer's chat template with the "
        "generation prompt (apply_chat_template), as a chat model is used; false: tokenizer(prompt), the "
        "tokenizer's own special tokens included",
    )
    temperature: float = option(
        0.0,
        "causal: sampling temperature of the continuations (0: greedy). Draws are common random numbers: "
        "every genome of a generation is scored on the same draws (seeded by the trial's seed, the "
        "generation and the prompt), the held-out splits on draws of their own",
        ge=0,
    )
    top_p: float = option(1.0, "causal, sampled: nucleus (top-p) of each draw", gt=0, le=1)
    completions: int = option(
        1,
        "causal: continuations per prompt, drawn (fitness.temperature > 0); a reward sees each prompt's "
        "group together, consecutively, as GRPO's reward functions do",
        ge=1,
        le=64,
    )
    stop: tuple[str, ...] = option(
        (),
        'causal: a continuation ends before the first of these strings (e.g. ["\\n"] for one line); '
        "rewards, samples and a logged model's predictions see it cut there",
    )

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.completions)
