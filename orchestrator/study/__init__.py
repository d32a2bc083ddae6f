"""The study file: its sections (the schema), reading a file into them, dotted keys, the search space
against its config, and the reference page generated from the schema."""

from evolora.evolution.lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
