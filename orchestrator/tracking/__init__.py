"""MLflow, and nothing else: runs, params, curves and datasets of a trial, the champion as a model and the
Model Registry, every call retried, stores of an earlier evolora migrated. Fed plain values: it knows no study."""

from evolora.evolution.lazy import lazy_names

_LAZY = {
    "CHAMPION_ALIAS": "models",
    "CREATE_KEY": "client",
    "EXAMPLES": "models",
    "LOADER_MODULE": "models",
    "MEASURE_TAG": "models",
    "MOVED_MODULES": "migrate",
    "MlflowTracker": "runlog",
    "RETRY_ENV": "client",
    "Registration": "models",
    "RetryingClient": "client",
    "artifact_names": "runlog",
    "backoff": "retry",
    "compared_params": "params",
    "default_tracking_uri": "runlog",
    "download_artifact": "runlog",
    "download_model": "models",
    "existing_tracking_uri": "runlog",
    "experiment_names": "runlog",
    "find_run": "runlog",
    "flatten": "params",
    "get_client": "client",
    "get_or_create_experiment": "runlog",
    "library_versions": "params",
    "log_model": "models",
    "migrate_mlmodel": "migrate",
    "migrate_store": "migrate",
    "register_champion": "models",
    "resume_run": "runlog",
    "call_with_retry": "retry",
    "retry_seconds": "client",
    "sqlite_file": "urls",
    "transient": "client",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
