"""A plug-in that fails, in a run and in a sweep on the real MiniLM: `run` exits non-zero with a message naming
the term and what it returned, the MLflow run is FAILED with it; a sweep fails that trial and goes on."""

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

import evolora
from evolora.fitness import FITNESS_TERMS
from evolora.orchestrator.sweep.storage import ATTR

from ..conftest import run_cli_in, tiny_study


def flaky_pairs(cosines, score, fail=False, **kwargs):
    """Pearson of cosine and gold — or, with ``fail``, a NaN (what a broken remote scorer might send)."""
    return float("nan") if fail else float(np.corrcoef(cosines, score)[0, 1])


@pytest.fixture()
def flaky():
    evolora.register_pair_metric("flaky_pairs", flaky_pairs)
    yield
    FITNESS_TERMS.unregister("flaky_pairs")


def _write(tmp_path, **over):
    s = tiny_study(
        tmp_path, **{"fitness__terms": [{"name": "flaky_pairs", "params": {"fail": True}}], **over}
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    return path


def test_a_run_whose_plugin_returns_nan_fails_with_the_term_and_value(tmp_path, flaky, capsys):
    path = _write(tmp_path)
    assert run_cli_in(tmp_path, ["run", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == "evolora: error: fitness term 'flaky_pairs' returned nan for the batch: not finite"
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"
    # nothing half-written
    assert not any(a.path == "adapter" for a in client.list_artifacts(run.info.run_id))


def test_a_sweep_fails_the_trial_whose_plugin_breaks_and_goes_on(tmp_path, flaky):
    path = _write(
        tmp_path,
        search={"fitness.terms.0.params.fail": {"type": "categorical", "choices": [True, False]}},
        sweep={"pruner": "none", "baseline": True, "sampler": "random"},
        name="flaky",
    )
    evolora.sweep(
        path,
        n_trials=2,
        progress=False,
        storage=str(tmp_path / "journal.log"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    study = optuna.load_study(
        study_name="flaky",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
        ),
    )
    trials = study.get_trials()
    # two complete trials asked for; the failed ones do not count, and the sweep went on past each
    assert len(trials) > 2 and trials[0].params == {
        "fitness.terms.0.params.fail": True
    }  # the file's own value first
    for t in trials:
        if t.params["fitness.terms.0.params.fail"]:
            assert t.state == optuna.trial.TrialState.FAIL
            assert t.user_attrs[ATTR + "failure"] == (
                "FitnessTermError: fitness term 'flaky_pairs' returned nan "
                "for the batch: not finite"
            )
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2


def test_a_failure_in_test_scoring_keeps_the_champion_logged_and_fails_the_run_with_the_reason(
    tmp_path, capsys
):
    """The late failure: the validation metric is a plug-in that breaks only on the test split (its size
    tells it apart). The evolution's champion — adapter, model, genome, lineage — is logged first, the
    pictures after the failure still are, and the run is FAILED with the reason."""
    from ..conftest import STSB

    n_test = 30

    def planted(cosines, score, **kwargs):
        if len(cosines) == n_test:
            raise RuntimeError("the test split broke me")
        return float(np.corrcoef(cosines, score)[0, 1])

    evolora.register_pair_metric("planted", planted)
    try:
        lines = (STSB / "sts-dev.csv").read_text(encoding="utf-8").splitlines()[-n_test:]
        (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        s = tiny_study(
            tmp_path, validation__metric="planted", data__test_path=str(tmp_path / "test.csv")
        )
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(s))
        assert run_cli_in(tmp_path, ["run", "s.yaml", "--no-progress"]) == 1
    finally:
        FITNESS_TERMS.unregister("planted")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "evolora: error: the champion is logged (adapter, model, genome); then test scoring: "
        "FitnessTermError: fitness term 'planted' (python tests.orchestrator.test_plugin_runs."
        "test_a_failure_in_test_scoring_keeps_the_champion_logged_and_fails_the_run_with_the_reason."
        "<locals>.planted) raised RuntimeError: the test split broke me"
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "adapter",
        "champion.npy",
        "lineage.parquet",
        "logbook.json",
        "curves.png",
        "basins.png",
        "error.txt",
    } <= logged
    assert run.data.tags.get("evolora.model_uri", "").startswith("models:/")
    # the evolution completed: its champion is logged once
    assert "evolora.incomplete" not in run.data.tags
    assert len(client.search_logged_models([run.info.experiment_id])) == 1
    assert "val_best" in run.data.metrics and "test_gain" not in run.data.metrics
    error = open(client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))).read()
    assert "the test split broke me" in error and "LateFailure" in error
