"""The genome layout: how a flat float32 vector maps onto LoRA matrices, as plain data.

A genome is one contiguous ``float32`` vector. Each LoRA matrix owns a slice of it, described by a
:class:`LoRASlice` (the PEFT state-dict key it is saved under, its shape and its offset). The layout knows
nothing about torch: ``fitness`` builds it from a peft model and aliases the model's parameters into one
buffer with the same layout, so writing a genome into the model is a single copy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from math import prod

import numpy as np

__all__ = ["LoRASlice", "GenomeLayout", "layer_of"]


def layer_of(key: str) -> int | None:
    """The transformer layer a state-dict key belongs to, its first dotted number
    (``...encoder.layer.5.attention...`` → 5); None for a key without one."""
    found = re.search(r"\.(\d+)\.", key)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class LoRASlice:
    key: str  # PEFT state-dict key, e.g. "base_model.model.encoder.layer.5.attention.self.query.lora_A.weight"
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def kind(self) -> str:
        """``"A"`` or ``"B"``: which LoRA factor this slice holds; ``"core"``: an r×r LoRA-XS core."""
        if ".lora_A." in self.key:
            return "A"
        return "B" if ".lora_B." in self.key else "core"

    def view(self, genome: np.ndarray) -> np.ndarray:
        return genome[self.offset : self.offset + self.size].reshape(self.shape)


@dataclass(frozen=True)
class GenomeLayout:
    slices: tuple[LoRASlice, ...]

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple[int, ...]]) -> GenomeLayout:
        """Lay the named matrices out back to back, in the given order."""
        out, offset = [], 0
        for key, shape in shapes.items():
            s = LoRASlice(key, tuple(int(d) for d in shape), offset)
            out.append(s)
            offset += s.size
        return cls(tuple(out))

    @property
    def size(self) -> int:
        return sum(s.size for s in self.slices)

    def __iter__(self) -> Iterator[LoRASlice]:
        return iter(self.slices)

    def __len__(self) -> int:
        return len(self.slices)

    def mask(self, kind: str) -> np.ndarray:
        """Boolean mask over the genome selecting every ``"A"`` or every ``"B"`` gene."""
        m = np.zeros(self.size, dtype=bool)
        for s in self.slices:
            if s.kind == kind:
                m[s.offset : s.offset + s.size] = True
        return m

    def layer_genes(self) -> dict[int, np.ndarray]:
        """{transformer layer index: the (sorted) positions of its genes}, the layer of each key by
        :func:`layer_of`. Raises ValueError for a key without one."""
        out: dict[int, list[np.ndarray]] = {}
        for s in self.slices:
            layer = layer_of(s.key)
            if layer is None:
                raise ValueError(f"{s.key}: no layer index in the key")
            out.setdefault(layer, []).append(np.arange(s.offset, s.offset + s.size))
        return {layer: np.sort(np.concatenate(parts)) for layer, parts in sorted(out.items())}

    def to_arrays(self, genome: np.ndarray) -> dict[str, np.ndarray]:
        """Genome → {state-dict key: array}; the arrays are copies, safe to keep."""
        self.check(genome)
        return {s.key: s.view(genome).copy() for s in self.slices}

    def from_arrays(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """{state-dict key: array} → genome (float32); every key of the layout must be present."""
        genome = np.empty(self.size, dtype=np.float32)
        for s in self.slices:
            a = np.asarray(arrays[s.key], dtype=np.float32)
            if a.shape != s.shape:
                raise ValueError(f"{s.key}: expected shape {s.shape}, got {a.shape}")
            genome[s.offset : s.offset + s.size] = a.reshape(-1)
        return genome

    def check(self, genome: np.ndarray) -> None:
        if genome.ndim != 1 or genome.shape[0] != self.size:
            raise ValueError(
                f"genome must be a flat vector of {self.size} genes, got shape {genome.shape}"
            )

    def to_json(self) -> list[dict]:
        return [asdict(s) for s in self.slices]

    @classmethod
    def from_json(cls, rows: list[dict]) -> GenomeLayout:
        return cls(tuple(LoRASlice(r["key"], tuple(r["shape"]), int(r["offset"])) for r in rows))


def genome_sha256(genome: np.ndarray) -> str:
    """A genome's identity: the SHA-256 of its float32 bytes (what a trial records of its champion)."""
    return hashlib.sha256(np.ascontiguousarray(genome, dtype=np.float32).tobytes()).hexdigest()
