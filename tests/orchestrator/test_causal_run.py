"""`evolora run` on the tiny LFM2 end to end: fitness improves, the exported adapter loads with stock peft
on the same base and gives the logged validation."""

import json
import re

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from evolora.fitness.lfm2 import build_tiny, sts_sentences
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


def _export(run, uri: str, out):
    """`evolora export` of the run's champion as a stock PEFT adapter → its directory."""
    argv = ["export", "--run-id", run.info.run_id, "--out", str(out), "--tracking-uri", uri]
    assert main(argv) == 0
    return out


def _stock_mean_loglik(adapter, texts) -> float:
    """Mean over texts of the mean token log-likelihood, stock peft on the tiny LFM2, one text at a time."""
    base_dir = build_tiny()  # the cached build the run used
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), str(adapter)
    ).eval()
    lps = []
    with torch.inference_mode():
        for text in texts:
            ids = tok(text)["input_ids"][
                :48
            ]  # the tokenizer's <|bos|> first, as the run's max_length
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
    out = _export(run, uri, tmp_path / "adapter")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert any("conv.in_proj" in t for t in cfg["target_modules"]) and not any(
        "feed_forward" in t for t in cfg["target_modules"]
    )
    # stock peft on the same base, one sentence at a time: the logged validation (mean token log-likelihood)
    dev = sts_sentences(STSB / "sts-dev.csv", "main-news")
    rng = np.random.Generator(np.random.PCG64(0))
    rng.choice(len(sts_sentences(STSB / "sts-train.csv", "main-news")), size=16, replace=False)
    idx = np.sort(rng.choice(len(dev), size=24, replace=False))
    assert abs(_stock_mean_loglik(out, [dev[i] for i in idx]) - run.data.metrics["val_best"]) < 1e-5


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
    out = _export(run, uri, tmp_path / "adapter")
    assert abs(_stock_mean_loglik(out, test_texts) - m["test_likelihood"]) < 1e-5


def test_a_reward_champion_scored_outside_evolora_gets_the_reported_reward(tmp_path, cache):
    """A reward study on the tiny LFM2: its exported champion, loaded with stock transformers + peft and fed
    ``tokenizer(prompt)`` as a user would, greedily continues the held-out prompts to the reward the run
    reported for them (the validation reward of the champion, the test reward too)."""

    def prompts(path):
        return [" ".join(c.split()[:3]) for c in sts_sentences(path, "main-captions")]

    train = prompts(STSB / "sts-train.csv")[:64]
    val, test = prompts(STSB / "sts-dev.csv")[:24], prompts(STSB / "sts-dev.csv")[24:48]
    for name, rows in (("train", train), ("val", val), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"prompt": p, "completion": " x"}) + "\n" for p in rows)
        )
    keyword = {"regex": r"\b(a|the|is|on)\b"}
    study = {
        "name": "lfm2-reward-test",
        "seed": 3,
        "model": {"base": "lfm2-tiny", "kind": "causal"},
        "lora": {"rank": 2, "alpha": 4, "blocks": {"attention": {"modules": ["q_proj", "v_proj"]}}},
        "data": {
            "train_path": str(tmp_path / "train.jsonl"),
            "dev_path": str(tmp_path / "val.jsonl"),
            "test_path": str(tmp_path / "test.jsonl"),
            "train_subset": 16,
            "batch_size": 8,
            "max_length": 32,
        },
        "fitness": {
            "max_new_tokens": 6,
            "terms": [{"name": "keyword", "weight": 1.0, "params": keyword}],
        },
        "validation": {"metric": "keyword", "params": keyword},
        "evolution": {
            "strategy": "openai-es",
            "population": 6,
            "generations": 4,
            "es": {"sigma": 0.5, "learning_rate": 0.2, "perturb": "B"},
        },
        "mlflow": {"experiment": "tests"},
    }
    run, client, uri = _run(tmp_path, study)
    out = _export(run, uri, tmp_path / "adapter")
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "lfm2-tiny"
    )  # the alias evolora builds it as, not a path under this machine's home
    tok = AutoTokenizer.from_pretrained(build_tiny())
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(build_tiny()), str(out)
    ).eval()
    pattern = re.compile(keyword["regex"], re.IGNORECASE)

    def reward(rows):
        hits = 0
        with torch.inference_mode():
            for p in rows:  # one prompt at a time, as a user's script would
                ids = tok(p, return_tensors="pt")
                gen = model.generate(**ids, max_new_tokens=6, do_sample=False)
                hits += bool(pattern.search(tok.decode(gen[0, ids["input_ids"].shape[1] :])))
        return hits / len(rows)

    m = run.data.metrics
    assert 0 < m["val_best"] < 1  # a reward that can move either way, not a constant
    assert reward(val) == m["val_best"]
    assert reward(test) == m["test_keyword"]
