"""`evolora run` on the tiny LFM2 end to end: fitness improves, the exported adapter loads with stock peft
on the same base and gives the logged validation."""

import json

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from evolora.fitness.lfm2 import sts_sentences
from evolora.orchestrator.cli.commands import main

from ..conftest import STSB


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _run(tmp_path, study: dict):
    """`evolora run` on a study dict; (its MLflow run, the client, the tracking URI)."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["run", str(path), "--no-progress", "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    return (
        client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0],
        client,
        uri,
    )


def _stock_mean_loglik(cache, adapter, texts) -> float:
    """Mean over texts of the mean token log-likelihood, stock peft on the tiny LFM2, one text at a time."""
    base_dir = cache / "lfm2-tiny"
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), str(adapter)
    ).eval()
    lps = []
    with torch.inference_mode():
        for text in texts:
            ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"][:47]
            x = torch.tensor([ids])
            logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].double(), -1)
            lps.append(float(logp.gather(-1, x[0, 1:, None]).mean()))
    return float(np.mean(lps))


def test_tiny_lfm2_run_improves_fitness_and_exports_a_stock_adapter(tmp_path, cache):
    study = {
        "name": "lfm2-tiny-test",
        "seed": 2,
        "model": {"base": "lfm2-tiny", "kind": "causal"},
        "lora": {
            "rank": 2,
            "alpha": 4,
            "blocks": {
                "attention": {"modules": ["q_proj", "v_proj"]},
                "conv": {"modules": ["in_proj"], "rank": 1},
                "feed_forward": {"enabled": False},
            },
        },
        "data": {
            "train_path": str(STSB / "sts-train.csv"),
            "dev_path": str(STSB / "sts-dev.csv"),
            "train_genre": "main-news",
            "dev_genre": "main-news",
            "train_subset": 16,
            "dev_subset": 24,
            "batch_size": 8,
            "max_length": 48,
        },
        "fitness": {
            "terms": [{"name": "likelihood", "weight": 1.0}, {"name": "kl_to_base", "weight": 0.1}]
        },
        "validation": {"metric": "likelihood"},
        "evolution": {
            "population": 6,
            "generations": 6,
            "tournament_size": 2,
            "mutation_sigma": 0.05,
        },
        "mlflow": {"experiment": "tests"},
    }
    run, client, uri = _run(tmp_path, study)
    best = [
        m.value
        for m in sorted(
            client.get_metric_history(run.info.run_id, "fit_best"), key=lambda m: m.step
        )
    ]
    assert best[-1] > best[0]
    assert "term_kl_to_base" in run.data.metrics
    out = tmp_path / "adapter"
    assert (
        main(["export", "--run-id", run.info.run_id, "--out", str(out), "--tracking-uri", uri]) == 0
    )
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert any("conv.in_proj" in t for t in cfg["target_modules"]) and not any(
        "feed_forward" in t for t in cfg["target_modules"]
    )
    # stock peft on the same base, one sentence at a time: the logged validation (mean token log-likelihood)
    dev = sts_sentences(STSB / "sts-dev.csv", "main-news")
    rng = np.random.Generator(np.random.PCG64(0))
    rng.choice(len(sts_sentences(STSB / "sts-train.csv", "main-news")), size=16, replace=False)
    idx = np.sort(rng.choice(len(dev), size=24, replace=False))
    assert (
        abs(_stock_mean_loglik(cache, out, [dev[i] for i in idx]) - run.data.metrics["val_best"])
        < 1e-5
    )


def test_causal_study_with_validation_from_train_and_a_test_split(tmp_path, cache):
    """The causal path gets the same three splits: validation drawn from the train texts, a test file scored
    once at the end (and equal to stock peft's mean token log-likelihood of the champion on it)."""
    test_texts = sts_sentences(STSB / "sts-dev.csv", "main-news")[:12]
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps({"target": t}) + "\n" for t in test_texts))
    study = {
        "name": "lfm2-splits",
        "seed": 1,
        "model": {"base": "lfm2-tiny", "kind": "causal"},
        "lora": {"rank": 2, "alpha": 4, "blocks": {"attention": {"modules": ["q_proj", "v_proj"]}}},
        "data": {
            "train_path": str(STSB / "sts-train.csv"),
            "dev_path": None,
            "val_fraction": 0.05,
            "test_path": str(test_file),
            "train_genre": "main-news",
            "train_subset": 16,
            "dev_subset": 16,
            "batch_size": 8,
            "max_length": 48,
            "rotate": True,
        },
        "fitness": {"terms": [{"name": "likelihood", "weight": 1.0}]},
        "validation": {"metric": "likelihood"},
        "evolution": {
            "strategy": "openai-es",
            "population": 5,
            "generations": 4,
            "es": {"sigma": 0.05, "perturb": "B", "shaping": "zscore"},
        },
        "mlflow": {"experiment": "tests"},
    }
    run, client, uri = _run(tmp_path, study)
    m = run.data.metrics
    assert {"test_likelihood", "test_base", "test_gain"} <= set(m)
    assert abs(m["test_gain"] - (m["test_likelihood"] - m["test_base"])) < 1e-12
    out = tmp_path / "adapter"
    assert (
        main(["export", "--run-id", run.info.run_id, "--out", str(out), "--tracking-uri", uri]) == 0
    )
    assert abs(_stock_mean_loglik(cache, out, test_texts) - m["test_likelihood"]) < 1e-5
