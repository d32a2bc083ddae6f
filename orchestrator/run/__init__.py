"""One trial end to end: the resolved study → task → evolution → MLflow run, its checkpoints, what it prints
and the pictures and tables it logs; a champion exported as a stock PEFT adapter."""

from evolora.evolution.lazy import lazy_names

_LAZY = {
    "BasinRecorder": "plots",
    "CHECKPOINT_TAG": "checkpoints",
    "Checkpointer": "observers",
    "CurvesImage": "observers",
    "INCOMPLETE_TAG": "checkpoints",
    "LateFailure": "outcome",
    "ProgressBar": "progress",
    "Report": "outcome",
    "RunOutcome": "outcome",
    "RunSettings": "trial",
    "SampleTable": "observers",
    "Trial": "trial",
    "budget_exclusions": "outcome",
    "checkpoint_identity": "checkpoints",
    "close": "plots",
    "default_run_name": "describe",
    "export_model": "export",
    "export_run": "export",
    "guard_text": "progress",
    "drain_warnings": "progress",
    "Callbacks": "observers",
    "load_checkpoint": "checkpoints",
    "log_champion": "outcome",
    "log_datasets": "describe",
    "log_report": "outcome",
    "plot_basins": "plots",
    "plot_curves": "plots",
    "plot_species": "plots",
    "plot_study": "plots",
    "prepare_torch": "trial",
    "quiet_libraries": "progress",
    "run_checkpoint": "checkpoints",
    "run_note": "describe",
    "run_trial": "trial",
    "score_objectives": "outcome",
    "score_test": "outcome",
    "score_validation_by_source": "outcome",
    "source_gains_text": "progress",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
