"""The example plug-in package, installed as a user installs one (`make setup`: pip install -e
examples/evolora-example-plugin): its entry points are found in a fresh process, and a reward study on it goes
end to end — run, sweep, the Model Registry's champion, export as a stock PEFT adapter — on the tiny LFM2."""

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from evolora.fitness.lfm2 import RECIPE

ROOT = Path(__file__).resolve().parent.parent
EVOLORA = [sys.executable, "-m", "evolora"]
TINY = [
    "--set",
    "model.base=lfm2-tiny",
    "--set",
    "evolution.generations=2",
    "--set",
    "evolution.population=4",
    "--set",
    "data.train_subset=8",
    "--set",
    "data.dev_subset=16",
    "--set",
    "validation.every=1",
    "--set",
    "data.batch_size=16",
]


@pytest.fixture(scope="module")
def plugin():
    try:
        return distribution("evolora-example-plugin")
    except PackageNotFoundError:
        pytest.fail(
            "the example plug-in package is not installed in this environment: run `make setup` "
            "(it runs pip install -e examples/evolora-example-plugin)"
        )


def _evolora(tmp_path, *argv, check=True):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "EVOLORA_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [*EVOLORA, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_evolora_terms_lists_the_installed_plugins_with_kind_origin_and_params(tmp_path, plugin):
    rows = {r["name"]: r for r in json.loads(_evolora(tmp_path, "terms", "--json").stdout)}
    assert (
        rows["concise_caption"]["task"] == "causal, batch"
        and rows["concise_caption"]["params"] == "max_words=4"
    )
    assert (
        rows["concise_caption"]["origin"]
        == f"entry point evolora_example.rewards:concise_caption (evolora-example-plugin {plugin.version})"
    )
    assert rows["paraphrase_accuracy"]["task"] == "pairs, batch"
    assert rows["likelihood"]["origin"] == "built-in"


@pytest.mark.slow
def test_a_reward_study_on_the_example_plugin_runs_sweeps_registers_and_exports(tmp_path, plugin):
    study = str(ROOT / "examples" / "concise-captions.yaml")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = _evolora(
        tmp_path, "run", study, *TINY, "--tracking-uri", uri, "--no-progress", "--register"
    )
    assert (
        "validation (concise_caption)" in run.stdout
        and "budget (likelihood at most 0.1 below the base)" in run.stdout
    )
    sweep = _evolora(
        tmp_path,
        "sweep",
        study,
        *TINY,
        "--n-trials",
        "2",
        "--tracking-uri",
        uri,
        "--no-progress",
        "--storage",
        str(tmp_path / "journal.log"),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
    )
    assert "2 complete" in sweep.stdout and "models:/concise-captions@champion" in sweep.stdout
    out = tmp_path / "adapter"
    _evolora(
        tmp_path,
        "export",
        "models:/concise-captions@champion",
        "--out",
        str(out),
        "--tracking-uri",
        uri,
    )
    mask = os.umask(0)
    os.umask(mask)
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
        "adapter_config.json": 0o666 & ~mask,
        "adapter_model.safetensors": 0o666 & ~mask,
    }  # as any file written
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "cache" / f"lfm2-tiny-{RECIPE}")
    model = PeftModel.from_pretrained(base, str(out)).eval()  # stock peft, no evolora
    with torch.inference_mode():
        assert torch.isfinite(model(input_ids=torch.tensor([[1, 5, 9, 12]])).logits).all()


def test_a_strategy_from_the_example_plugin_runs_in_evolora_loop_and_its_bad_params_are_refused(
    tmp_path, plugin
):
    """`evolution.strategy: cem` names the example package's ask/tell strategy (entry-point group
    evolora.strategies): a fresh process finds it, runs it on the real MiniLM, records its births in the
    lineage, repeats the run to the bit with the same seed, and refuses a key its Params does not declare."""
    import yaml

    from .conftest import tiny_study

    study = tiny_study(tmp_path, name="cem-demo", evolution__generations=3)
    study["evolution"] = {
        "strategy": "cem",
        "population": 6,
        "generations": 3,
        "params": {"sigma": 0.05, "elite": 0.5},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(2):
        _evolora(tmp_path, "run", str(path), "--tracking-uri", uri, "--no-progress")
    from mlflow.tracking import MlflowClient

    from evolora.evolution.lineage import read_lineage

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study["mlflow"]["experiment"])
    first, second = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])

    def curve(run):
        return [m.value for m in client.get_metric_history(run.info.run_id, "fit_best")]

    assert curve(first) == curve(second) and len(curve(first)) == 3  # the same seed: the same run
    assert first.data.metrics["val_best"] == second.data.metrics["val_best"]
    assert first.data.tags["evolora.champion_id"] == second.data.tags["evolora.champion_id"]
    assert first.data.params["evolution.params.elite"] == "0.5"  # logged as a run's parameter
    rows = read_lineage(
        client.download_artifacts(first.info.run_id, "lineage.parquet", str(tmp_path))
    )
    assert {r["op"] for r in rows if r["event"] == "birth"} == {"seed", "cem-sample", "cem-update"}
    study["evolution"]["params"] = {"sigma": 0.05, "bogus": 1}
    path.write_text(yaml.safe_dump(study))
    bad = _evolora(tmp_path, "run", str(path), "--tracking-uri", uri, check=False)
    assert (
        bad.returncode == 2
        and "evolution.params.bogus" in bad.stderr
        and "sigma, elite" in bad.stderr
    )
