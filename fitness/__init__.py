"""Fitness: base models, LoRA genomes on torch, tasks and data, fitness plug-ins and their registry."""

from . import causal_terms  # noqa: F401  (registers the causal fitness terms)
from .causal import CausalEvaluator, EncodedTexts, TextExample, load_texts
from .causal_task import CausalTask
from .encoder import EncodedPairs, EncoderEvaluator, mean_pool
from .lora import FlatLoRA, attach_lora
from .models import MODEL_LOADERS, find_layers, load_base, pick_device, resolve_base
from .pairs import PACKAGED_STSB, PairOutputs, Pairs, load_sts
from .registry import FITNESS_TERMS, FitnessTerm, Registry, register_fitness
from .tasks import PairTask, Task, TaskSpec, build_task, make_terms

__all__ = [
    "CausalEvaluator", "EncodedTexts", "TextExample", "load_texts", "CausalTask",
    "EncodedPairs", "EncoderEvaluator", "mean_pool",
    "FlatLoRA", "attach_lora",
    "MODEL_LOADERS", "find_layers", "load_base", "pick_device", "resolve_base",
    "PACKAGED_STSB", "PairOutputs", "Pairs", "load_sts",
    "FITNESS_TERMS", "FitnessTerm", "Registry", "register_fitness",
    "PairTask", "Task", "TaskSpec", "build_task", "make_terms",
]
