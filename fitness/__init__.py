"""Fitness: base models, LoRA genomes on torch, tasks and data, fitness plug-ins and their registry.

Importing the package is light (no torch, transformers or peft): it registers the built-in fitness terms,
so a study file can be validated in a fraction of a second; everything that needs torch is imported on
first use of its name (``from evolora.fitness import build_task`` loads it then).
"""

from evolora.evolution.lazy import lazy_names
from evolora.fitness import causal_terms, judges, pairs  # noqa: F401  (register the built-in fitness terms; none imports torch)
from evolora.fitness.pairs import (
    PACKAGED_STSB,
    PairOutputs,
    Pairs,
    hold_out_sources,
    load_pairs,
    load_sts,
)
from evolora.fitness.plugins import (
    FITNESS_TERMS,
    FitnessTermError,
    describe_terms,
    pair_metric,
    register_fitness,
    register_pair_metric,
    register_reward,
    reward,
)
from evolora.fitness.registry import FitnessTerm, Registry
from evolora.fitness.tables import Columns, read_table

_LAZY = {
    "CausalEvaluator": "causal",
    "EncodedTexts": "causal",
    "TextExample": "texts",
    "load_texts": "texts",
    "CausalTask": "causal_task",
    "EncodedPairs": "encoder",
    "EncoderEvaluator": "encoder",
    "mean_pool": "encoder",
    "FlatLoRA": "lora",
    "attach_lora": "lora",
    "MODEL_LOADERS": "models",
    "find_layers": "models",
    "load_base": "models",
    "pick_device": "models",
    "resolve_base": "models",
    "PairTask": "tasks",
    "Task": "tasks",
    "TaskSpec": "spec",
    "ModelSettings": "settings",
    "LoraSettings": "settings",
    "DataSettings": "settings",
    "FitnessSettings": "settings",
    "build_task": "build",
    "make_terms": "spec",
}

__all__ = [
    *_LAZY,
    "PACKAGED_STSB",
    "PairOutputs",
    "Pairs",
    "hold_out_sources",
    "load_pairs",
    "load_sts",
    "FITNESS_TERMS",
    "FitnessTerm",
    "FitnessTermError",
    "Registry",
    "register_fitness",
    "register_reward",
    "register_pair_metric",
    "reward",
    "pair_metric",
    "describe_terms",
    "Columns",
    "read_table",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
