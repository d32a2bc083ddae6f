"""The base of every study-file section: strict (an unknown key is an error), frozen, and every float finite
(``.nan`` / ``.inf`` for a weight, σ or rate is refused where it is read)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict", "NAME"]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"  # names that become paths: no separators, no "..", bounded


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
