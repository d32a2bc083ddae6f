"""The frozen-trunk cache shared by the evaluators: when LoRA sits only on a top slice of layers
(``first`` … N-1), everything below ``first`` is the same for every genome, so it is computed once per
evaluation batch and kept in a small LRU keyed by the batch's content (a new batch can never be served a
stale trunk)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch

from .models import find_layers

__all__ = ["TrunkCache"]


class TrunkCache:
    def __init__(self, model: torch.nn.Module, adapted_layers: list[int], cache: bool | str = "auto",
                 entries: int = 4, supported: bool = True, why: str = "") -> None:
        self.layers = find_layers(model)
        n = len(self.layers)
        self.first = min(adapted_layers) if adapted_layers else n
        ok = sorted(adapted_layers) == list(range(self.first, n)) and supported
        if cache is True and not ok:
            raise ValueError(f"the trunk cache needs LoRA on a top slice of layers{why}, got layers {adapted_layers}")
        self.enabled = ok if cache == "auto" else bool(cache)
        self._lru: OrderedDict[str, Any] = OrderedDict()
        self._entries = entries
        self.computations = 0  # how many times a trunk was (re)computed: for tests and benchmarks

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self._lru:
            self._lru.move_to_end(key)
            return self._lru[key]
        value = compute()
        self._lru[key] = value
        self.computations += 1
        while len(self._lru) > self._entries:
            self._lru.popitem(last=False)
        return value
