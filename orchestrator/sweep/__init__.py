"""The outer loop: an Optuna study over a study file's search space, workers claiming trials, liveness and
retries, what each trial stores, the sweep's parent run, reproducing a trial."""

from evolora.evolution.lazy import lazy_names

_LAZY = {
    "ATTR": "storage",
    "BASE_CONFIG": "record",
    "Fence": "claims",
    "Liveness": "claims",
    "OptunaReporter": "worker",
    "PARENT_RUN_ID": "record",
    "PATIENCE": "storage",
    "RETRIABLE": "claims",
    "Reproduction": "reproduce",
    "ResilientStorage": "storage",
    "STUDY_UID": "optuna_study",
    "SweepContext": "context",
    "TRACKING_FAILURE": "claims",
    "TrialRecord": "record",
    "attrs": "record",
    "baseline_params": "sampling",
    "beat_interval": "claims",
    "best_trial": "parent",
    "check_data": "launch",
    "check_failures": "claims",
    "check_workers_see_terms": "launch",
    "claim": "claims",
    "decode": "sampling",
    "default_storage": "storage",
    "failure_cap": "claims",
    "find_trial": "reproduce",
    "finish_parent": "parent",
    "host_id": "claims",
    "key": "record",
    "log_trial": "parent",
    "make_pruner": "sampling",
    "make_sampler": "sampling",
    "objectives": "sampling",
    "open_existing_storage": "storage",
    "open_storage": "storage",
    "open_study": "optuna_study",
    "parent_run": "parent",
    "pareto_front": "parent",
    "recover": "claims",
    "register": "parent",
    "registered_name": "parent",
    "reproduce_trial": "reproduce",
    "run_sweep": "launch",
    "sample": "sampling",
    "script_terms": "launch",
    "storage_lock": "storage",
    "store": "record",
    "suggest": "sampling",
    "trial_config": "sampling",
    "trial_seed": "sampling",
    "run_worker": "worker",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
