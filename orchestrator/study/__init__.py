"""The study file: its sections (the schema), reading a file into them, dotted keys, the search space
against its config, and the reference page generated from the schema.

Its public names are importable from here (``from evolora.orchestrator.study import …``); each module loads on
first use of one of its names, so importing the room costs nothing until then."""

from importlib import import_module

_LAZY = {
    "BLOCK_MODULES": "model",
    "BOOL_NOT_A_NUMBER": "strict",
    "BlockConfig": "model",
    "ColumnsConfig": "data",
    "DEFAULT_VAL_FRACTION": "load",
    "DataConfig": "data",
    "ESConfig": "evolution",
    "EvolutionConfig": "evolution",
    "LoraConfig": "model",
    "MlflowConfig": "runtime",
    "ModelConfig": "model",
    "NAME": "sections",
    "ObjectiveConfig": "sections",
    "REFERENCE_PAGE": "reference",
    "RayConfig": "runtime",
    "SearchSpec": "sections",
    "SpeciationConfig": "evolution",
    "Strict": "strict",
    "StudyConfig": "sections",
    "SweepConfig": "sections",
    "apply_overrides": "load",
    "baseline_params": "space",
    "check_search": "space",
    "columns": "data",
    "declared_fields": "strict",
    "section": "strict",
    "leaf_paths": "paths",
    "load_raw": "load",
    "load_study": "load",
    "parse_study": "load",
    "resolved": "sections",
    "set_path": "paths",
    "study_json_schema": "reference",
    "study_reference": "reference",
    "validation_error": "paths",
    "validation_source": "load",
    "value_at": "paths",
    "with_values": "paths",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
