"""The MLflow server ``evolora ui`` starts: MLflow's own app, declared as the ``mlflow.app`` entry point
``evolora`` (MLflow's extension point for server apps, as its ``basic-auth`` app is), whose page sets two of the
UI's defaults before it loads, where the browser holds no choice of its own:

* the **Model training** view (MLflow 3 opens experiments in its GenAI view: traces, sessions, judges — none of
  which an evolora run has), so the experiment list, a click on an experiment and on a run land on the runs
  table, the metric charts and the models;
* the telemetry notice dismissed: the server runs with ``MLFLOW_DISABLE_TELEMETRY``, so it collects nothing.

A choice the user makes in the UI (the GenAI / Model training switch) is kept: a default is only written where
none is stored. The keys are the MLflow UI's own; ``tests/test_ui.py`` fails if a new MLflow reads others."""

from __future__ import annotations

import json

__all__ = ["create_app", "UI_DEFAULTS"]

# the MLflow UI's local-storage keys (`<key>_v<version>`) and JSON values: what the user has not chosen yet
UI_DEFAULTS = {
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.telemetry.info.alert.dismissed_v1": True,
}

_SCRIPT = (
    "<script>(function(){var d=%s;try{for(var k in d){if(localStorage.getItem(k)===null)"
    "{localStorage.setItem(k,JSON.stringify(d[k]));}}}catch(e){}})();</script>"
)


def _with_defaults(html: str) -> str:
    script = _SCRIPT % json.dumps(UI_DEFAULTS)
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
            page = _with_defaults(fh.read())

        def serve_with_defaults():
            return Response(page, mimetype="text/html")

        app.view_functions["serve"] = serve_with_defaults
    from mlflow.server.fastapi_app import create_fastapi_app

    return create_fastapi_app(app)  # `evolora ui` runs MLflow's default server, uvicorn
