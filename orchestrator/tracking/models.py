"""The champion as an MLflow model (pyfunc, loaded through evolora's loader module: no pickle) and the Model
Registry: versions, the ``champion`` alias, and registered names resolved in the store's own registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from evolora.orchestrator.tracking.client import get_client

__all__ = [
    "log_model",
    "register_champion",
    "Registration",
    "MEASURE_TAG",
    "download_model",
    "CHAMPION_ALIAS",
    "LOADER_MODULE",
    "EXAMPLES",
]

CHAMPION_ALIAS = "champion"
# MLflow imports it from the installed evolora: no pickle, no code in the artifacts
LOADER_MODULE = "evolora.fitness.serving"


def _signature(kind: str, max_new_tokens: int):
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    if kind == "encoder":
        return ModelSignature(
            inputs=Schema([ColSpec("string", "sentence1"), ColSpec("string", "sentence2")]),
            outputs=Schema([ColSpec("double", "similarity")]),
        )
    return ModelSignature(
        inputs=Schema(
            [ColSpec("string", "prompt", required=False), ColSpec("string", "text", required=False)]
        ),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema(
            [
                ParamSpec("mode", "string", "generate"),
                ParamSpec("max_new_tokens", "long", int(max_new_tokens)),
            ]
        ),
    )


EXAMPLES = {
    "encoder": {
        "sentence1": ["A man is playing a guitar.", "A woman is slicing an onion."],
        "sentence2": ["A person plays the guitar.", "A dog runs across a field."],
    },
    "causal": {"prompt": ["The weather today is", "In the news:"]},
}


def _requirements(base_ref: dict) -> list[str]:
    import importlib.metadata as md

    reqs = []
    for pkg in (
        "evolora",
        "torch",
        "transformers",
        "peft",
        "safetensors",
        "pandas",
        "numpy",
        "scipy",
        *([base_ref["package"]] if "package" in base_ref else []),
    ):
        try:
            reqs.append(f"{pkg}=={md.version(pkg)}")
        except md.PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def log_model(tracking_uri: str, run_id: str, model_dir: Path, meta: dict, step: int = 0) -> str:
    """Log an evolora model directory (:func:`evolora.fitness.serving.write_model_dir`) as the run's MLflow model,
    pyfunc flavour with ``fitness.serving`` as loader module, signature and input example. → model URI."""
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    kind = meta["kind"]
    example = pd.DataFrame(EXAMPLES[kind])

    def log():
        # on exit the run reads FINISHED until finish() sets its status
        with mlflow.start_run(run_id=run_id, log_system_metrics=False):
            return mlflow.pyfunc.log_model(
                name="model",
                loader_module=LOADER_MODULE,
                data_path=str(model_dir),
                signature=_signature(kind, meta["max_new_tokens"]),
                input_example=example,
                pip_requirements=_requirements(meta["base"]),
                step=step,
                metadata={"evolora": {"task": meta["task"], "base": meta["base"]}},
            )

    return get_client(tracking_uri)._call("log_model", log).model_uri


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


class Registration(NamedTuple):
    """What :func:`register_champion` did: the new version (None: not registered), whether the ``champion``
    alias moved to it, and why not when it did not."""

    version: str | None
    moved: bool
    why: str = ""


MEASURE_TAG = "val_measure"  # the validation measurement a version's `val` was taken with (metric, params, data)


def _beats(current, value: float, direction: str, measure: str | None) -> tuple[bool, str]:
    """Whether ``value`` beats the current champion version (None: there is none), and why not."""
    if current is not None and current.tags.get(MEASURE_TAG) != measure:
        return False, (
            f"the current champion (version {current.version}) was validated on another measurement (metric, "
            f"params or validation data: {current.tags.get(MEASURE_TAG, 'not recorded')} vs {measure}); "
            "its value and this one are not comparable"
        )
    cur_val = float(current.tags["val"]) if current is not None and "val" in current.tags else None
    if cur_val is None or _better(value, cur_val, direction):
        return True, ""
    return False, (
        f"the current champion (version {current.version}) is as good or better on validation ({cur_val:.5f})"
    )


def register_champion(
    tracking_uri: str,
    name: str,
    model_uri: str,
    run_id: str,
    value: float,
    direction: str = "maximize",
    tags: dict[str, Any] | None = None,
    force: bool = False,
    measure: str | None = None,
) -> Registration:
    """Register ``model_uri`` as a new version of ``name`` and point the ``champion`` alias at it if its
    ``value`` (validation) beats the version the alias points at (or there is none). Values are compared only
    when both were taken by the same ``measure`` (:meth:`evolora.fitness.tasks.Task.validation_measure`: the same
    metric and params on the same validation data); otherwise the version is registered and the alias stays.
    A model that does not beat the champion is not registered unless ``force``."""
    from mlflow.exceptions import MlflowException

    client = get_client(tracking_uri)
    try:
        client.create_registered_model(
            name,
            description="evolora champions: each version a LoRA adapter evolved "
            "on a frozen base; the alias `champion` points at the best on validation.",
        )
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    current = None
    try:
        current = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        pass
    better, why = _beats(current, value, direction, measure)
    comparable = current is None or current.tags.get(MEASURE_TAG) == measure
    # not comparable: registered all the same, the alias stays
    if comparable and not better and not force:
        return Registration(None, False, why)
    # a logged model's id
    model_id = model_uri[len("models:/") :] if model_uri.startswith("models:/m-") else None
    version_tags = {
        "val": repr(float(value)),
        **({MEASURE_TAG: measure} if measure else {}),
        **{k: str(v) for k, v in (tags or {}).items()},
    }
    version = client.create_model_version(
        name, source=model_uri, run_id=run_id, model_id=model_id, tags=version_tags
    )
    if better:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    return Registration(str(version.version), better, why)


def _registered_source(tracking_uri: str, model_uri: str) -> str:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` → the version's download URI, read from this
    store's own registry (MLflow's ``models:/`` resolution reads a process-wide registry URI instead, which
    evolora never sets). Any other URI (``runs:/…``, a logged model ``models:/m-…``) is returned as it is."""
    from mlflow.exceptions import MlflowException

    if not model_uri.startswith("models:/") or model_uri.startswith("models:/m-"):
        return model_uri
    ref = model_uri[len("models:/") :].strip("/")
    client = get_client(tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        elif "/" in ref:
            name, version = ref.split("/", 1)
            if not version.isdigit():
                raise LookupError(
                    f"{version!r} is not a version number (stages are not used; name@alias is)"
                )
        else:
            raise LookupError("expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return client.get_model_version_download_uri(name, version)
    except MlflowException as e:
        raise LookupError(e.message.splitlines()[0]) from None


def download_model(tracking_uri: str, model_uri: str, dst: Path) -> Path:
    """A registered or logged model (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/…``) → its
    local directory (the one holding ``MLmodel``). LookupError (MLflow's first line) if it cannot be found."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    source = _registered_source(tracking_uri, model_uri)
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(dst), tracking_uri=tracking_uri
            )
        )
    except MlflowException as e:
        raise LookupError(e.message.splitlines()[0]) from None
