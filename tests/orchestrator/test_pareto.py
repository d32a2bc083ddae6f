"""Pareto sweeps (`sweep.objectives`) on the tiny LFM2: every trial records one value per objective (scored
on validation for its champion), the parent run shows the front, any Pareto trial reproduces, and bad
objectives are config errors."""

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from ..conftest import STSB
from ..conftest import run_cli_in as _in


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _study(**sweep) -> dict:
    return {
        "name": "pareto",
        "seed": 1,
        "model": {"base": "lfm2-tiny", "kind": "causal", "threads": 1},
        "lora": {
            "rank": 2,
            "alpha": 4,
            "blocks": {
                "attention": {"modules": ["q_proj", "v_proj"]},
                "feed_forward": {"enabled": False},
                "conv": {"enabled": False},
            },
        },
        "data": {
            "train_path": str(STSB / "sts-train.csv"),
            "dev_path": str(STSB / "sts-dev.csv"),
            "train_genre": "main-news",
            "dev_genre": "main-news",
            "train_subset": 12,
            "dev_subset": 16,
            "batch_size": 8,
            "max_length": 40,
        },
        "fitness": {"terms": [{"name": "likelihood", "weight": 1.0}]},
        "validation": {"metric": "likelihood"},
        "evolution": {"population": 4, "generations": 3, "tournament_size": 2},
        "mlflow": {"experiment": "tests"},
        "search": {
            "evolution.mutation_sigma": {"type": "float", "low": 0.005, "high": 0.2, "log": True}
        },
        "sweep": {
            "objectives": [{"metric": "likelihood"}, {"metric": "kl_to_base"}],
            "sampler": "nsga2",
            **sweep,
        },
    }


def test_two_objective_sweep_records_both_values_and_a_pareto_front(tmp_path, cache, capsys):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_study()))
    assert _in(tmp_path, ["sweep", "s.yaml", "--n-trials", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "mlruns" / "optuna-journal.log"))
    )
    study = optuna.load_study(study_name="pareto", storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]  # terms: higher is better
    trials = study.trials
    assert [t.state.name for t in trials] == [
        "COMPLETE"
    ] * 4  # nothing pruned: pruning is single-objective
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    for t in trials:
        assert len(t.values) == 2
        # the likelihood objective is the validation metric: the same term on the same data for the same genome
        assert t.values[0] == t.user_attrs["evolora:val_champion"]
        assert t.values[1] <= 0.0  # minus a KL divergence
        run = client.get_run(t.user_attrs["evolora:run_id"]).data.metrics
        assert (run["objective_likelihood"], run["objective_kl_to_base"]) == tuple(t.values)
        assert run["objective_kl_to_base_base"] == 0.0  # the base against itself
    front = sorted(t.number for t in study.best_trials)  # Optuna's own front
    assert (
        f"pareto front (likelihood maximize, kl_to_base maximize): trials {', '.join(map(str, front))}"
        in out
    )
    parent = client.get_run(study.user_attrs["evolora:parent_run_id"])
    assert parent.data.tags["evolora.pareto_trials"] == ",".join(map(str, front))
    assert "Pareto front" in parent.data.tags["mlflow.note.content"]
    assert {"study/pareto_front.png", "study/pareto_front.html"} <= {
        f.path for f in client.list_artifacts(parent.info.run_id, "study")
    }
    assert sorted(
        m.step for m in client.get_metric_history(parent.info.run_id, "trial_kl_to_base")
    ) == [0, 1, 2, 3]
    # any Pareto trial reproduces bit for bit, both objectives included
    pick = front[-1]
    capsys.readouterr()
    assert _in(tmp_path, ["reproduce", "pareto", "--trial", str(pick), "--no-progress"]) == 0
    rep = capsys.readouterr().out
    assert "objective kl_to_base" in rep and "identical" in rep and "differs" not in rep
    assert (
        _in(tmp_path, ["export", "pareto", "--trial", str(pick), "--out", str(tmp_path / "a")]) == 0
    )
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    "objectives, field, value",
    [
        (
            [{"metric": "likelihood"}, {"metric": "no_such_term"}],
            "sweep.objectives.1.metric",
            "no_such_term",
        ),
        (
            [{"metric": "likelihood"}, {"metric": "likelihood"}],
            "sweep.objectives.1.metric",
            "likelihood",
        ),
        (
            [{"metric": "likelihood"}, {"metric": "stsb_spearman"}],
            "sweep.objectives.1.metric",
            "stsb_spearman",
        ),
        (
            [{"metric": "likelihood"}, {"metric": "keyword", "params": {"keywords": []}}],
            "sweep.objectives.1.params",
            "[]",
        ),
        (
            [{"metric": "likelihood", "direction": "minimize"}, {"metric": "kl_to_base"}],
            "sweep.objectives.0.direction",
            "minimize",
        ),
        ([{"metric": "likelihood"}], "sweep.objectives", "likelihood"),
    ],
)
def test_bad_objectives_exit_2_naming_the_field(tmp_path, cache, capsys, objectives, field, value):
    study = _study()
    study["sweep"]["objectives"] = objectives
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    assert _in(tmp_path, ["sweep", "s.yaml", "--n-trials", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert field in err and value in err, err
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing written
