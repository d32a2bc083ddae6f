"""The study file's ``model`` and ``lora`` sections: the frozen base model and the LoRA adapter a genome maps
onto (rank, scaling, modules, layers, block types, what evolves). Generated from the settings the task reads
(:class:`~evolora.fitness.settings.ModelSettings`, :class:`~evolora.fitness.settings.LoraSettings`), where each
key is declared once; declared here: what only a study has (``model.threads``, the block types as a
sub-section) and the study's ``model.trunk_memo``, whose ``auto`` the assembly resolves."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evolora.evolution.errors import ConfigError
from evolora.fitness.settings import LoraSettings, ModelSettings, check_genome
from evolora.orchestrator.study.strict import Strict, declared_fields, section

__all__ = ["ModelConfig", "BlockConfig", "LoraConfig", "BLOCK_MODULES"]


_MODEL = declared_fields(
    ModelSettings,
    study={
        "trunk_memo": (
            Literal["auto", True, False],
            Field(
                "auto",
                description="keep each train sentence's frozen-trunk states (the layers below the "
                "adapted ones) once computed, for batches that are many, small and new (encoder pair "
                "tasks; auto: with evolution.es.batches: per_pair when LoRA sits on a top slice of "
                "layers)",
            ),
        )
    },
)
_THREADS = (
    int | None,
    Field(None, ge=1, description="torch threads for this process (default: torch's own)"),
)
_WHERE = ("base", "kind", "device")  # the model, and where it runs (with how many threads)
ModelConfig = section(
    __name__,
    "ModelConfig",
    ModelSettings.__doc__,
    {
        **{k: _MODEL[k] for k in _WHERE},
        "threads": _THREADS,
        **{k: v for k, v in _MODEL.items() if k not in _WHERE},
    },
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


def _check_lora(self):
    _check_layers("lora.layers", self.layers)
    for name, b in (self.blocks or {}).items():
        _check_layers(f"lora.blocks.{name}.layers", b.layers)
    if self.blocks is not None and not any(b.enabled for b in self.blocks.values()):
        raise ConfigError(
            "lora.blocks", "every block type is disabled", {k: False for k in self.blocks}
        )
    check_genome(self.genome, self.init, self.rank, self.a_subspace, self.b_subspace)
    return self


LoraConfig = section(
    __name__,
    "LoraConfig",
    LoraSettings.__doc__,
    declared_fields(
        LoraSettings,
        study={
            "blocks": (
                dict[Literal["attention", "conv", "feed_forward"], BlockConfig] | None,
                Field(
                    None,
                    description="block-type targeting for hybrid causal models "
                    "(replaces target_modules/layers)",
                ),
            )
        },
    ),
    check=model_validator(mode="after")(_check_lora),
)
