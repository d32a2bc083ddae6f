"""The study file's ``data`` section: the three splits (fitness batches from train, validation that chooses the
champion, a test scored once), their files, formats and columns."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evolora.evolution.errors import ConfigError
from evolora.fitness import PACKAGED_STSB, Columns
from evolora.orchestrator.study.strict import Strict

__all__ = ["ColumnsConfig", "DataConfig", "columns"]


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


def columns(data: DataConfig) -> Columns:
    """The study's column mapping as the data loaders take it."""
    return Columns(**data.columns.model_dump())
