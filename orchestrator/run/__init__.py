"""One trial end to end: the resolved study → task → evolution → MLflow run, its checkpoints, what it prints
and the pictures and tables it logs; a champion exported as a stock PEFT adapter.

Its public names are importable from here (``from evolora.orchestrator.run import …``); each module loads on
first use of one of its names, so importing the room costs nothing until then."""

from importlib import import_module

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


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
