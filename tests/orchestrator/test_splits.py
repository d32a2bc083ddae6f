"""Three splits, three jobs: fitness batches from train, every choice from validation, the test split scored
once at the end and never read by anything that chooses. Proven on the real MiniLM with instrumentation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from evolora.evolution import Observer
from evolora.fitness import EncoderEvaluator, hold_out_sources, load_sts
from evolora.fitness.splits import split_validation
from evolora.orchestrator.cli.commands import main
from evolora.orchestrator.run.trial import RunSettings, run_trial
from evolora.orchestrator.study.load import parse_study

from ..conftest import STSB, tiny_study


def _test_file(tmp_path, n=30):
    """A small test split: the last ``n`` pairs of sts-dev (sentences that occur nowhere in sts-train)."""
    train = load_sts(STSB / "sts-train.csv", "t")
    seen = set(train.s1) | set(train.s2)
    lines = [
        ln
        for ln in (STSB / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
        if ln.split("\t")[5] not in seen and ln.split("\t")[6] not in seen
    ][-n:]
    path = tmp_path / "test.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, {tuple(ln.split("\t")[5:7]) for ln in lines}


def test_validation_split_is_deterministic_disjoint_and_complete():
    train = load_sts(STSB / "sts-train.csv", "t")
    a_tr, a_val = split_validation(train, 0.1, 0)
    b_tr, b_val = split_validation(train, 0.1, 0)
    _, c_val = split_validation(train, 0.1, 1)
    assert a_val.s1 == b_val.s1 and a_tr.s2 == b_tr.s2  # same seed, same split
    assert a_val.s1 != c_val.s1  # the seed matters
    pairs_tr, pairs_val = set(zip(a_tr.s1, a_tr.s2)), set(zip(a_val.s1, a_val.s2))
    # disjoint by content: duplicate pairs of sts-train stay on one side
    assert not pairs_tr & pairs_val
    assert len(a_tr) + len(a_val) == len(train)
    distinct = len(set(zip(train.s1, train.s2)))
    assert len(pairs_val) == round(0.1 * distinct)


def test_split_config_errors_name_the_field(tmp_path):
    from evolora.evolution.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^data\.val_fraction: .*not both"):
        parse_study({"data": {"val_fraction": 0.1, "dev_path": str(STSB / "sts-dev.csv")}})
    from evolora.fitness.build import load_data
    from evolora.orchestrator.assembly import task_spec

    # the schema reads no file …
    missing = parse_study({"data": {"test_path": str(tmp_path / "nope.csv")}})
    with pytest.raises(ConfigError, match=r"^data\.test_path: data file not found"):
        load_data(task_spec(missing))  # … the data are checked where they load
    with pytest.raises(ConfigError, match=r"^data\.val_fraction"):
        parse_study({"data": {"val_fraction": 1.5}})
    cfg = parse_study({"data": {"val_fraction": 0.1}})
    assert cfg.data.dev_path is None and cfg.data.val_fraction == 0.1
    assert parse_study({}).data.dev_path.endswith("sts-dev.csv")  # default: the packaged dev split


class _Phase(Observer):
    def __init__(self):
        self.ended = False

    def on_end(self, result):
        self.ended = True


@pytest.fixture
def encoded(monkeypatch):
    """Every set of sentences the encoder tokenises, with whether the evolution had ended at that moment."""
    log, phase = [], _Phase()
    orig = EncoderEvaluator.encode

    def spy(self, pairs):
        log.append((phase.ended, set(zip(pairs.s1, pairs.s2))))
        return orig(self, pairs)

    monkeypatch.setattr(EncoderEvaluator, "encode", spy)
    return log, phase


def test_test_split_never_reaches_fitness_or_selection_and_is_scored_once(tmp_path, encoded):
    log, phase = encoded
    test_path, test_pairs = _test_file(tmp_path)
    study = tiny_study(
        tmp_path,
        data__val_fraction=0.02,
        data__dev_path=None,
        data__test_path=str(test_path),
        data__rotate=True,
        evolution__generations=4,
    )
    cfg = parse_study(study)
    out = run_trial(
        cfg,
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", progress=False),
        observers=[phase],
    )
    during = [s for ended, s in log if not ended]
    after = [s for ended, s in log if ended]
    test_sentences = {x for p in test_pairs for x in p}
    # no test sentence tokenised during the run
    assert not {x for s in during for p in s for x in p} & test_sentences
    from evolora.orchestrator.tracking.models import EXAMPLES

    example = set(zip(EXAMPLES["encoder"]["sentence1"], EXAMPLES["encoder"]["sentence2"]))
    # the test split: scored once, at the end
    assert [s for s in after if s & test_pairs] == [test_pairs]
    # else only the logged model's input example
    assert all(s == example for s in after if s != test_pairs)
    # every set tokenised during the run is a fitness batch from the train split or the validation subset
    train = load_sts(STSB / "sts-train.csv", "t")
    tr, val = split_validation(train, 0.02, 0)
    train_pairs, val_pairs = set(zip(tr.s1, tr.s2)), set(zip(val.s1, val.s2))
    assert all(s <= train_pairs or s <= val_pairs for s in during)
    # validation data: encoded once, from the validation split
    assert sum(s <= val_pairs for s in during) == 1
    assert sum(s <= train_pairs for s in during) == 4  # one rotating fitness batch per generation
    assert out.test is not None and out.test["gain"] == out.test["champion"] - out.test["base"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    m = client.get_run(out.run_id).data.metrics
    assert m["test_stsb_spearman"] == out.test["champion"] and m["test_base"] == out.test["base"]
    assert m["val_best"] == out.result.champion_val  # the answer was chosen on validation
    assert not train_pairs & val_pairs
    assert len(train_pairs) + len(val_pairs) == len(set(zip(train.s1, train.s2)))


def test_hold_out_sources_takes_identical_pairs_of_other_sources_along():
    from evolora.fitness import Pairs

    pairs = Pairs(
        ("a", "b", "a", "c"),
        ("x", "y", "x", "z"),
        np.array([1.0, 2.0, 3.0, 4.0]),
        ("news", "forum", "captions", "news"),
    )
    rest, held = hold_out_sources(pairs, ["news"])
    # order kept, duplicate taken along
    assert list(zip(held.s1, held.s2)) == [
        ("a", "x"),
        ("a", "x"),
        ("c", "z"),
    ]
    assert held.source == ("news", "captions", "news") and list(held.gold) == [1.0, 3.0, 4.0]
    assert rest.s1 == ("b",) and rest.source == ("forum",)
    both = rest + held
    assert both.s1 == ("b", "a", "a", "c") and list(both.gold) == [2.0, 1.0, 3.0, 4.0]


@pytest.mark.slow
def test_held_out_sources_join_validation_whole_and_never_reach_fitness(tmp_path, encoded):
    """``data.val_sources``: every train pair of those sources (and every pair identical to one) is validation,
    beside the val_fraction draw from the other sources; no fitness batch holds any of them."""
    log, phase = encoded
    study = tiny_study(
        tmp_path,
        data__val_fraction=0.02,
        data__dev_path=None,
        data__dev_subset=None,
        data__val_sources=["deft-news"],
        data__rotate=True,
        data__train_subset=64,
        evolution__generations=6,
    )
    out = run_trial(
        parse_study(study),
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", progress=False),
        observers=[phase],
    )
    train = load_sts(STSB / "sts-train.csv", "t")
    news = {(a, b) for a, b, src in zip(train.s1, train.s2, train.source) if src == "deft-news"}
    rest, held = hold_out_sources(train, ["deft-news"])
    assert set(zip(held.s1, held.s2)) == news and set(held.source) == {"deft-news"}
    assert not set(zip(rest.s1, rest.s2)) & news and len(rest) + len(held) == len(train)
    tr, drawn = split_validation(rest, 0.02, 0)
    train_pairs, val_pairs = set(zip(tr.s1, tr.s2)), set(zip(drawn.s1, drawn.s2)) | news
    during = [s for ended, s in log if not ended]
    # the held-out source: in validation, encoded once
    assert [s for s in during if s & news] == [val_pairs]
    batches = [s for s in during if s != val_pairs]
    # one fitness batch per generation
    assert len(batches) == 6 and all(s <= train_pairs for s in batches)
    # validation by source: the held-out source apart from the drawn ones, logged beside the whole-split gain
    by = out.val_by_source
    assert by["deft-news"]["pairs"] == len(held) and sum(v["pairs"] for v in by.values()) == len(
        drawn
    ) + len(held)
    assert set(by) == set(held.source) | set(drawn.source)
    assert all(v["gain"] == v["champion"] - v["base"] for v in by.values())
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    table = json.loads(
        Path(
            client.download_artifacts(out.run_id, "val_by_source.json", str(tmp_path / "v"))
        ).read_text()
    )
    assert [r[0] for r in table["data"]] == list(by)
    assert all(abs(r[-1] - by[r[0]]["gain"]) < 1e-9 for r in table["data"])
    # the same study again: the same split and the same champion, bit for bit
    again = run_trial(
        parse_study(study),
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", progress=False),
    )
    assert again.result.champion_val == out.result.champion_val


def test_per_pair_fitness_batches_come_from_train_only_one_per_pair(tmp_path, encoded, monkeypatch):
    """ES with a batch per antithetic pair: every batch is drawn from the train split (none from validation
    or test), both signs of a pair share it (one tokenisation per pair), the trunk memo (on by default here)
    holds train sentences only, and a run repeats bit for bit."""
    log, phase = encoded
    memoised = []
    orig = EncoderEvaluator.memoise
    monkeypatch.setattr(
        EncoderEvaluator,
        "memoise",
        lambda self, sentences: (memoised.append(set(sentences)), orig(self, sentences))[1],
    )
    test_path, test_pairs = _test_file(tmp_path)
    study = tiny_study(
        tmp_path,
        data__val_fraction=0.02,
        data__dev_path=None,
        data__test_path=str(test_path),
        data__rotate=True,
        data__train_subset=4,
        evolution__generations=3,
        evolution__population=5,
        evolution__strategy="openai-es",
        evolution__es={
            "shaping": "zscore",
            "batches": "per_pair",
            "sigma": 0.05,
            "learning_rate": 0.05,
        },
    )
    cfg = parse_study(study)
    out = run_trial(
        cfg,
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", progress=False),
        observers=[phase],
    )
    during = [s for ended, s in log if not ended]
    train = load_sts(STSB / "sts-train.csv", "t")
    tr, val = split_validation(train, 0.02, 0)
    train_pairs, val_pairs = set(zip(tr.s1, tr.s2)), set(zip(val.s1, val.s2))
    assert all(s <= train_pairs or s <= val_pairs for s in during)
    assert sum(s <= val_pairs for s in during) == 1
    fitness_sets = [s for s in during if s <= train_pairs]
    # per generation: the mean's shared batch and one per pair (2 pairs)
    assert len(fitness_sets) == 3 * (1 + 2)
    assert len({frozenset(s) for s in fitness_sets}) == 9 and all(len(s) == 4 for s in fitness_sets)
    assert memoised[0] == {
        x for p in train_pairs for x in p
    }  # the memo: the train split's sentences
    assert not memoised[0] & (
        {x for p in val_pairs for x in p} - {x for p in train_pairs for x in p}
    )
    assert not memoised[0] & {x for p in test_pairs for x in p}
    again = run_trial(
        parse_study(study),
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm2.db'}", progress=False),
    )
    assert again.result.champion.tobytes() == out.result.champion.tobytes()
    assert [r["fit_best"] for r in again.result.logbook] == [
        r["fit_best"] for r in out.result.logbook
    ]


def test_eva_directions_come_from_train_only(tmp_path, encoded):
    """``lora.init: eva`` reads the inputs of ``init_examples`` train pairs, before the first generation, and
    nothing of validation or test; the run repeats bit for bit."""
    log, phase = encoded
    test_path, test_pairs = _test_file(tmp_path)
    study = tiny_study(
        tmp_path,
        data__val_fraction=0.02,
        data__dev_path=None,
        data__test_path=str(test_path),
        data__rotate=True,
        lora__init="eva",
        lora__init_examples=50,
        evolution__generations=2,
        evolution__population=5,
        evolution__strategy="openai-es",
        evolution__es={"sigma": 0.05, "learning_rate": 0.05, "perturb": "B"},
    )
    out = run_trial(
        parse_study(study),
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", progress=False),
        observers=[phase],
    )
    during = [s for ended, s in log if not ended]
    train = load_sts(STSB / "sts-train.csv", "t")
    tr, val = split_validation(train, 0.02, 0)
    train_pairs, val_pairs = set(zip(tr.s1, tr.s2)), set(zip(val.s1, val.s2))
    # the eva examples come first, from train
    assert len(during[0]) == 50 and during[0] <= train_pairs
    assert all(s <= train_pairs or s <= val_pairs for s in during)
    assert not {x for s in during for p in s for x in p} & {x for p in test_pairs for x in p}
    # eva's examples, one fitness batch per generation
    assert sum(s <= train_pairs for s in during) == 1 + 2
    again = run_trial(
        parse_study(study),
        RunSettings(tracking_uri=f"sqlite:///{tmp_path / 'm2.db'}", progress=False),
    )
    assert again.result.champion.tobytes() == out.result.champion.tobytes()


def test_sweep_objective_and_pruning_use_validation_only(tmp_path, encoded):
    log, _ = encoded
    test_path, test_pairs = _test_file(tmp_path)
    s = tiny_study(
        tmp_path, data__val_fraction=0.02, data__dev_path=None, data__test_path=str(test_path)
    )
    s["name"] = "splits"
    s["search"] = {
        "evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1, "log": True}
    }
    s["sweep"] = {"pruner": "median", "report_every": 1, "pruner_warmup": 0}
    path = tmp_path / "splits.yaml"
    path.write_text(yaml.safe_dump(s))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["sweep", str(path), "--n-trials", "2", "--storage", "sqlite:///study.db"]) == 0
    finally:
        os.chdir(cwd)
    study = optuna.load_study(study_name="splits", storage=f"sqlite:///{tmp_path / 'study.db'}")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        run = client.get_run(t.user_attrs["evolora:run_id"])
        val_curve = [m.value for m in client.get_metric_history(run.info.run_id, "val_champion")]
        assert t.value == run.data.metrics["val_best"]  # objective = validation
        # pruning saw validation values only
        assert set(t.intermediate_values.values()) <= set(val_curve)
        assert t.user_attrs["evolora:test"]["champion"] == run.data.metrics["test_stsb_spearman"]
    # test sentences were tokenised only after each trial's evolution (once per completed trial)
    assert sum(1 for _, s in log if s == test_pairs) == len(done)
    assert all(not (s & test_pairs) or s == test_pairs for _, s in log)


def test_the_test_split_is_also_scored_per_source_and_each_matches_stock_peft(
    tmp_path, minilm_dir, capsys
):
    """STS-B names each pair's source; the test metric per source (where a gain comes from, and what it costs)
    is logged and printed, and each value is what stock peft scores on that source's pairs alone."""
    train = load_sts(STSB / "sts-train.csv", "t")
    seen = set(train.s1) | set(train.s2)
    rows = [
        ln
        for ln in (STSB / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
        if ln.split("\t")[5] not in seen and ln.split("\t")[6] not in seen
    ]
    picked = {
        src: [ln for ln in rows if ln.split("\t")[1] == src][:20]
        for src in ("headlines", "answers-forums")
    }
    lines = picked["headlines"] + picked["answers-forums"]
    test_path = tmp_path / "test.csv"
    test_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    study = tiny_study(
        tmp_path,
        data__val_fraction=0.02,
        data__dev_path=None,
        data__test_path=str(test_path),
        evolution__strategy="openai-es",
        evolution__generations=3,
        lora__layers=[4, 5],
    )
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    out = run_trial(parse_study(study), RunSettings(tracking_uri=uri, progress=False))
    by = out.test["by_source"]
    assert list(by) == ["answers-forums", "headlines"] and all(
        v["pairs"] == 20 for v in by.values()
    )
    for v in by.values():
        assert v["gain"] == v["champion"] - v["base"]
    client = MlflowClient(uri)
    m = client.get_run(out.run_id).data.metrics
    assert {k: m[f"test_gain/{k}"] for k in by} == {k: v["gain"] for k, v in by.items()}
    table = json.loads(
        Path(
            client.download_artifacts(out.run_id, "test_by_source.json", str(tmp_path / "t"))
        ).read_text()
    )
    assert [r[0] for r in table["data"]] == list(by)
    # each source's value is stock peft's Spearman on that source's pairs, for an adapter far from the base
    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import task_spec

    task = build_task(task_spec(parse_study(study)))
    genome = task.seed_genome() + np.random.default_rng(0).normal(0, 0.05, task.layout.size).astype(
        np.float32
    )
    by = {k: {"champion": v} for k, (v, _) in task.test_scores(genome)[1].items()}
    base = task.test_scores(task.seed_genome())[1]
    assert all(abs(by[k]["champion"] - base[k][0]) > 1e-3 for k in by)
    adapter = tmp_path / "adapter"
    task.save_adapter(genome, adapter)
    helper = Path(__file__).resolve().parents[1] / "helpers" / "score_adapter.py"
    for src, v in by.items():
        idx = np.array([i for i, ln in enumerate(lines) if ln.split("\t")[1] == src])
        np.save(tmp_path / f"{src}.npy", idx)
        proc = subprocess.run(
            [
                sys.executable,
                str(helper),
                str(minilm_dir),
                str(adapter),
                str(test_path),
                str(tmp_path / f"{src}.npy"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": ""},
            cwd=tmp_path,
        )
        assert abs(float(proc.stdout.strip().splitlines()[-1]) - v["champion"]) < 1e-5, src
