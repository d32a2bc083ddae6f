"""A reward study with a budget, end to end on the tiny LFM2: the champion is the genome with the best held-out
reward among those whose held-out likelihood stays within the declared budget; the ones the budget excluded
are logged with why."""

import json

import pytest
import yaml
from mlflow.tracking import MlflowClient

import evolora
from evolora.fitness import FITNESS_TERMS, build_task
from evolora.fitness.causal import TextExample
from evolora.fitness.lfm2 import sts_sentences

from ..conftest import STSB, make_spec, run_cli_in

NEW = 4  # greedy tokens per completion


def drift(completions, base_completion, **kwargs):
    """The planted reward: 1 for a completion that differs from the base model's, so the reward rises exactly
    as the model moves away from the base — and held-out likelihood falls."""
    return [float(c != b) for c, b in zip(completions, base_completion)]


@pytest.fixture()
def planted(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path / "cache"))
    evolora.register_reward("drift", drift)
    words = [s.split() for s in sts_sentences(STSB / "sts-train.csv", "main-captions")[:60]]
    examples = [TextExample(" ".join(w[:3]), " " + " ".join(w[3:])) for w in words if len(w) > 3]
    task = build_task(
        make_spec(
            base="lfm2-tiny",
            kind="causal",
            train_path=str(STSB / "sts-train.csv"),
            dev_path=str(STSB / "sts-dev.csv"),
            train_genre="main-captions",
            dev_genre="main-captions",
            dev_subset=2,
            train_subset=2,
            max_new_tokens=NEW,
            terms=(("likelihood", 1.0),),
            validation="likelihood",
            rank=2,
            target_modules=("q_proj",),
            batch_size=16,
        )
    )
    task.write(task.seed_genome())
    # each split's base completions decoded as the run decodes that split (its own batches of 16): greedy
    # decoding of a random tiny model meets near-ties, where another padding could pick another token
    base = [
        g
        for part in (examples[:32], examples[32:])
        for g in task.evaluator.generate(task.evaluator.encode(part), NEW)
    ]
    rows = [
        {"prompt": e.prompt, "target": e.target, "base_completion": b}
        for e, b in zip(examples, base)
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:32]))
    (tmp_path / "val.jsonl").write_text("\n".join(json.dumps(r) for r in rows[32:]))
    yield tmp_path
    FITNESS_TERMS.unregister("drift")


def _study(max_drop):
    return {
        "name": "budget",
        "seed": 4,
        "model": {"base": "lfm2-tiny", "kind": "causal"},
        "lora": {"rank": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj", "in_proj", "w2"]},
        "data": {
            "train_path": "train.jsonl",
            "dev_path": "val.jsonl",
            "train_subset": None,
            "batch_size": 16,
            "max_length": 32,
        },
        "fitness": {"max_new_tokens": NEW, "terms": [{"name": "drift"}]},
        "validation": {
            "metric": "drift",
            "every": 1,
            "budget": [{"metric": "likelihood", "max_drop": max_drop}],
        },
        "evolution": {
            "population": 6,
            "generations": 5,
            "tournament_size": 2,
            "mutation_sigma": 0.05,
        },
        "mlflow": {"experiment": "tests", "system_metrics": False},
    }


def test_the_champion_is_the_best_reward_within_the_likelihood_budget(planted, capsys):
    (planted / "s.yaml").write_text(yaml.safe_dump(_study(0.01)))
    uri = f"sqlite:///{planted / 'mlflow.db'}"
    assert run_cli_in(planted, ["run", "s.yaml", "--no-progress", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
    logbook = json.loads(
        open(client.download_artifacts(run.info.run_id, "logbook.json", str(planted))).read()
    )
    base_lik = logbook[0]["val_base_likelihood"]
    validated = [r for r in logbook if "val_admissible" in r]
    inside = [r for r in validated if r["val_admissible"]]
    outside = [r for r in validated if not r["val_admissible"]]
    # the rule: within budget ⇔ held-out likelihood no more than max_drop below the base's
    assert all(
        (r["val_likelihood"] >= base_lik - 0.01) == bool(r["val_admissible"]) for r in validated
    )
    print(
        [
            (r["gen"], r["val"], round(r["val_likelihood"], 4), r["val_admissible"])
            for r in validated
        ],
        base_lik,
    )
    assert outside and inside
    # the base (reward 0 against itself) is always in budget
    best_inside = max([r["val"] for r in inside] + [0.0])
    # the budget kept a higher reward from being chosen
    assert max(r["val"] for r in outside) > best_inside
    assert run.data.metrics["val_best"] == best_inside > 0.0  # and an adapted genome won within it
    champion_gen = int(run.data.metrics["champion_gen"])
    assert (
        logbook[champion_gen]["val"] == best_inside
        and logbook[champion_gen]["val_admissible"] == 1.0
    )
    excluded = json.loads(
        open(
            client.download_artifacts(run.info.run_id, "budget_excluded.json", str(planted))
        ).read()
    )
    assert len(excluded["data"]) == len(outside) == run.data.metrics["budget_excluded"]
    assert all(
        "likelihood" in row[excluded["columns"].index("why")]
        and "max_drop 0.01" in row[excluded["columns"].index("why")]
        for row in excluded["data"]
    )
    assert f"{len(outside)} validated genome(s) excluded: gen " in out
    assert "val_likelihood" in run.data.metrics  # the guard's curve
