"""The frozen-trunk cache shared by the evaluators: when LoRA sits only on a top slice of layers
(``first`` … N-1), everything below ``first`` is the same for every genome, so it is computed once per
evaluation batch and kept in a small LRU keyed by the batch's content (a new batch can never be served a
stale trunk).

Shared prefix (:meth:`TrunkCache.shared_below`): when every genome of an evaluation holds the same adapter
below some adapted layer ``L`` (an ES perturbing one layer per generation, ``evolution.es.blocks: layer``),
the trunk extends to ``L`` — computed once with that common adapter in the model — and each genome runs only
layers ``L..N-1``. Its cache key then carries ``L`` and a hash of the common adapter, so a trunk computed
for one adapter is never served to another."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from evolora.fitness.models import find_layers

__all__ = ["TrunkCache"]


class TrunkCache:
    def __init__(
        self,
        model: torch.nn.Module,
        adapted_layers: list[int],
        cache: bool | str = "auto",
        entries: int = 4,
        supported: bool = True,
        why: str = "",
    ) -> None:
        self.layers = find_layers(model)
        n = len(self.layers)
        self.first = min(adapted_layers) if adapted_layers else n
        ok = sorted(adapted_layers) == list(range(self.first, n)) and supported
        if cache is True and not ok:
            raise ValueError(
                f"the trunk cache needs LoRA on a top slice of layers{why}, got layers {adapted_layers}"
            )
        self.enabled = ok if cache == "auto" else bool(cache)
        self._lru: OrderedDict[str, Any] = OrderedDict()
        self._entries = entries
        self.computations = 0  # how many times a trunk was (re)computed: for tests and benchmarks
        # the layer each genome's own forward starts at (``shared_below`` raises it)
        self.start = self.first
        self._prefix = ""  # hash of the adapter below ``start`` that every genome in scope shares

    @contextlib.contextmanager
    def shared_below(self, layer: int, prefix: str):
        """Within the context every genome evaluated holds the same adapter below ``layer`` (hashed as
        ``prefix``): the trunk runs up to ``layer`` with that adapter and each genome from ``layer`` on."""
        if not self.enabled or layer <= self.first:
            yield
            return
        if layer >= len(self.layers):
            raise ValueError(
                f"shared_below: layer {layer} is beyond the model's {len(self.layers)} layers"
            )
        self.start, self._prefix = layer, prefix
        try:
            yield
        finally:
            self.start, self._prefix = self.first, ""

    def key(self, data_key: str) -> str:
        """The cache key of a batch's trunk in the current scope (the batch's own key at ``first``)."""
        return data_key if self.start == self.first else f"{data_key}|{self.start}|{self._prefix}"

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
