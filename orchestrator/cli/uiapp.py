"""The MLflow server ``evolora ui`` starts: MLflow's own app, declared as the ``mlflow.app`` entry point
``evolora`` (MLflow's extension point for server apps, as its ``basic-auth`` app is), whose page sets two of the
UI's defaults before it loads, where the browser holds no choice of its own:

* the **Model training** view (MLflow 3 opens experiments in its GenAI view: traces, sessions, judges — none of
  which an evolora run has), so the experiment list, a click on an experiment and on a run land on the runs
  table, the metric charts and the models;
* the telemetry notice dismissed: the server runs with ``MLFLOW_DISABLE_TELEMETRY``, so it collects nothing;
  the assistant panel closed (it takes a third of the page and has nothing to say about an evolora run);
* each experiment's **runs table** with a sweep's trials shown under their parent run (expanded) and, as
  columns, the figures a user compares them by — ``val_best``, ``val_gain``, ``test_gain`` where logged — and
  the parameters that differ between its runs (a sweep's sampled values), read from the store when the page
  is served.

A choice the user makes in the UI (the GenAI / Model training switch) is kept: a default is only written where
none is stored. The keys are the MLflow UI's own; ``tests/test_ui.py`` fails if a new MLflow reads others."""

from __future__ import annotations

import json

__all__ = ["create_app", "UI_DEFAULTS"]

# the MLflow UI's local-storage keys (`<key>_v<version>`) and JSON values: what the user has not chosen yet
UI_DEFAULTS = {
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.telemetry.info.alert.dismissed_v1": True,
    "mlflow.assistant.panelOpen_v1": False,
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
}
# the runs table's own key: its state per experiment (columns, which parent runs show their children)
TABLE_STATE = 'MLflowLocalStorage-1.1-ExperimentPage-["{id}"]-ReactComponentState'
# what MLflow's table shows by default, then evolora's figures, then the parameters that vary
DEFAULT_COLUMNS = ["attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`"]
KEY_METRICS = ("val_best", "val_gain", "test_gain")
MAX_PARAMS = 8

_SCRIPT = (
    "<script>(function(){var d=%s;try{for(var k in d){if(localStorage.getItem(k)===null)"
    "{localStorage.setItem(k,JSON.stringify(d[k]));}}}catch(e){}})();</script>"
)


def table_defaults(runs_by_experiment: dict[str, list]) -> dict:
    """The runs-table defaults of each experiment from its recent runs (MLflow ``Run`` objects): trials
    expanded under their parent, the key metrics logged there and the parameters that differ as columns."""
    out = {}
    for exp_id, runs in runs_by_experiment.items():
        metrics = [m for m in KEY_METRICS if any(m in r.data.metrics for r in runs)]
        values: dict[str, set] = {}
        for r in runs:
            for k, v in r.data.params.items():
                values.setdefault(k, set()).add(v)
        varying = sorted(k for k, v in values.items() if len(v) > 1 and k != "seed")[:MAX_PARAMS]
        columns = [*DEFAULT_COLUMNS, *(f"metrics.`{m}`" for m in metrics)]
        columns += [f"params.`{k}`" for k in varying]
        parents = {r.data.tags.get("mlflow.parentRunId") for r in runs} - {None}
        out[TABLE_STATE.format(id=exp_id)] = {
            "selectedColumns": columns,
            "runsExpanded": {p: True for p in sorted(parents)},
        }
    return out


def _store_defaults() -> dict:
    """:func:`table_defaults` of the server's store (its 50 most recent experiments, 100 runs each); nothing
    when the store cannot be read (the page still loads)."""
    import os

    try:
        from mlflow.server import BACKEND_STORE_URI_ENV_VAR
        from mlflow.tracking import MlflowClient

        client = MlflowClient(os.environ[BACKEND_STORE_URI_ENV_VAR])
        exps = client.search_experiments(max_results=50)
        return table_defaults(
            {e.experiment_id: client.search_runs([e.experiment_id], max_results=100) for e in exps}
        )
    except Exception:  # a default is a convenience: never an error page
        return {}


def _with_defaults(html: str, extra: dict | None = None) -> str:
    script = _SCRIPT % json.dumps({**UI_DEFAULTS, **(extra or {})})
    return html.replace("<head>", "<head>" + script, 1) if "<head>" in html else script + html


def create_app():
    """MLflow's server app with the page above, as the ASGI app MLflow's default server (uvicorn) runs."""
    import os

    from flask import Response
    from mlflow.server import app

    index = os.path.join(app.static_folder, "index.html")
    serve = app.view_functions.get("serve")
    if serve is not None and os.path.exists(index):
        with open(index, encoding="utf-8") as fh:
            page = fh.read()

        def serve_with_defaults():
            return Response(_with_defaults(page, _store_defaults()), mimetype="text/html")

        app.view_functions["serve"] = serve_with_defaults
    from mlflow.server.fastapi_app import create_fastapi_app

    return create_fastapi_app(app)  # `evolora ui` runs MLflow's default server, uvicorn
