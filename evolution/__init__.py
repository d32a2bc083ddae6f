"""Model-agnostic evolution: genome layout, DEAP toolbox and operators, strategies, the generation loop.

Never imports torch, peft, mlflow, optuna or ``fitness``: it knows flat float32 vectors and fitness values.
"""

from .errors import ConfigError, EvoloraError, RegistryError
from .genome import GenomeLayout, LoRASlice
from .es import ESParams, OpenAIES
from .sepcma import SepCMAES
from .lineage import LineageRecorder, ancestry, read_lineage, to_parquet
from .loop import Evolution, LoopParams, RunResult, Validation
from .observers import Observer
from .operators import cx_blend, mut_gaussian
from .seeding import TrialRandom
from .speciation import Speciation, SpeciationParams, allocate, distance
from .strategies import GAParams, GeneticAlgorithm, Strategy

__all__ = [
    "ConfigError", "EvoloraError", "RegistryError",
    "GenomeLayout", "LoRASlice",
    "Evolution", "LoopParams", "RunResult", "Validation",
    "Observer",
    "cx_blend", "mut_gaussian",
    "TrialRandom",
    "GAParams", "GeneticAlgorithm", "Strategy",
    "ESParams", "OpenAIES", "SepCMAES",
    "LineageRecorder", "ancestry", "read_lineage", "to_parquet",
    "Speciation", "SpeciationParams", "allocate", "distance",
]
