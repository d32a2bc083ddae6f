"""Model-agnostic evolution: genome layout, DEAP toolbox and operators, strategies, the generation loop.

Never imports torch, peft, mlflow, optuna or ``fitness``: it knows flat float32 vectors and fitness values.
"""

from evolora.evolution.asktell import AskTell
from evolora.evolution.errors import ConfigError, EvoloraError, RegistryError
from evolora.evolution.es import ESParams, OpenAIES
from evolora.evolution.genome import GenomeLayout, LoRASlice
from evolora.evolution.lineage import LineageRecorder, ancestry, read_lineage, to_parquet
from evolora.evolution.loop import Evolution, LoopParams, RunResult, Validation
from evolora.evolution.observers import Observer
from evolora.evolution.operators import cx_blend, mut_gaussian
from evolora.evolution.records import (
    BirthEvent,
    EvaluationEvent,
    GenerationRow,
    LineageEvent,
    ValidationEvent,
)
from evolora.evolution.seeding import TrialRandom
from evolora.evolution.sepcma import SepCMAES
from evolora.evolution.snes import SNES
from evolora.evolution.speciation import Speciation, SpeciationParams, allocate, distance
from evolora.evolution.strategies import (
    STRATEGIES,
    STRATEGY_GROUP,
    GAParams,
    GeneticAlgorithm,
    Strategy,
    register_strategy,
    strategy_class,
    strategy_names,
)

__all__ = [
    "ConfigError",
    "EvoloraError",
    "RegistryError",
    "GenomeLayout",
    "LoRASlice",
    "Evolution",
    "LoopParams",
    "RunResult",
    "Validation",
    "Observer",
    "GenerationRow",
    "LineageEvent",
    "BirthEvent",
    "EvaluationEvent",
    "ValidationEvent",
    "cx_blend",
    "mut_gaussian",
    "TrialRandom",
    "GAParams",
    "GeneticAlgorithm",
    "Strategy",
    "STRATEGIES",
    "register_strategy",
    "strategy_class",
    "strategy_names",
    "STRATEGY_GROUP",
    "AskTell",
    "ESParams",
    "OpenAIES",
    "SepCMAES",
    "SNES",
    "LineageRecorder",
    "ancestry",
    "read_lineage",
    "to_parquet",
    "Speciation",
    "SpeciationParams",
    "allocate",
    "distance",
]
