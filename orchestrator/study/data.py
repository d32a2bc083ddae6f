"""The study file's ``data`` section: the three splits (fitness batches from train, validation that chooses the
champion, a test scored once), their files, formats and columns. Generated from the settings the task reads
(:class:`~evolora.fitness.settings.DataSettings`, :class:`~evolora.fitness.tables.Columns`), where each key is
declared once; here the rules across its keys."""

from __future__ import annotations

from pydantic import model_validator

from evolora.evolution.errors import ConfigError
from evolora.fitness.settings import DataSettings
from evolora.fitness.tables import Columns
from evolora.orchestrator.study.strict import declared_fields, section

__all__ = ["ColumnsConfig", "DataConfig", "columns"]


ColumnsConfig = section(__name__, "ColumnsConfig", Columns.__doc__, declared_fields(Columns))


def _check_data(self):
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


DataConfig = section(
    __name__,
    "DataConfig",
    DataSettings.__doc__,
    declared_fields(DataSettings, study={"columns": (ColumnsConfig, ColumnsConfig())}),
    check=model_validator(mode="after")(_check_data),
)


def columns(data: DataConfig) -> Columns:
    """The study's column mapping as the data loaders take it."""
    return Columns(**data.columns.model_dump())
