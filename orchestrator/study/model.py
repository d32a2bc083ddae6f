"""The study file's ``model`` and ``lora`` sections: the frozen base model and the LoRA adapter a genome maps
onto (rank, scaling, modules, layers, block types, what evolves)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evolora.evolution.errors import ConfigError
from evolora.fitness.spec import GENOMES, INITS, check_genome
from evolora.orchestrator.study.strict import Strict

__all__ = ["ModelConfig", "BlockConfig", "LoraConfig", "BLOCK_MODULES"]


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
