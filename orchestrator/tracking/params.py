"""What a run logs as its MLflow params: the part of the resolved config a user compares runs by, flattened to
dotted keys, and the versions of the libraries that produced it."""

from __future__ import annotations

import dataclasses
import json
import platform

from evolora.evolution import GAParams
from evolora.evolution.errors import RegistryError
from evolora.evolution.strategies import strategy_class

__all__ = ["compared_params", "flatten", "library_versions"]


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """Nested config → {"evolution.population": "16", ...}; lists become JSON."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("evolora", "torch", "transformers", "peft", "deap", "optuna", "mlflow", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# what only the GA reads: its operators, the hall of fame, speciation
_GA_ONLY = (
    *(f.name for f in dataclasses.fields(GAParams) if f.name != "population"),
    "hall_of_fame",
    "speciation",
)


def compared_params(conf: dict) -> dict:
    """The part of a resolved config a user compares runs by, logged as MLflow params (the whole study is the
    run's ``study.yaml`` artifact): no nulls, no search space or MLflow settings, and of the evolution only what
    its strategy reads (the GA's operators for ``ga``, speciation when enabled, ``es`` for the ES strategies). A
    sweep's trial adds the values Optuna sampled."""
    evo = dict(conf.get("evolution") or {})
    try:
        strategy = strategy_class(evo.get("strategy") or "ga")
    except RegistryError:
        strategy = None
    # its options live in a sub-section: the GA's are not its
    if strategy is not None and strategy.options:
        for k in (*_GA_ONLY, *({"es", "params"} - {strategy.options})):
            evo.pop(k, None)
        if strategy.reads is not None:
            evo[strategy.options] = {
                k: (evo.get(strategy.options) or {}).get(k) for k in strategy.reads
            }
    elif strategy is not None:
        evo.pop("es", None)
        evo.pop("params", None)
        if not (evo.get("speciation") or {}).get("enabled"):
            evo.pop("speciation", None)

    def prune(d: dict) -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                v = prune(v)
                if v:
                    out[k] = v
            elif v is not None and v != []:
                out[k] = v
        return out

    kept = {k: v for k, v in conf.items() if k not in ("search", "sweep", "mlflow", "evolution")}
    return prune({**kept, "evolution": evo})
