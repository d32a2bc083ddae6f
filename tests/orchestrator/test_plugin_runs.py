"""A plug-in that fails, in a run and in a sweep on the real MiniLM: `run` exits non-zero with a message naming
the term and what it returned, the MLflow run is FAILED with it; a sweep fails that trial and goes on."""

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

import evolora
from fitness import FITNESS_TERMS
from orchestrator.storage import ATTR

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
    s = tiny_study(tmp_path, **{"fitness__terms": [{"name": "flaky_pairs", "params": {"fail": True}}], **over})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    return path


def test_a_run_whose_plugin_returns_nan_fails_with_the_term_and_value(tmp_path, flaky, capsys):
    path = _write(tmp_path)
    assert run_cli_in(tmp_path, ["run", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "evolora: error: fitness term 'flaky_pairs' returned nan for the batch: not finite"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run, = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"
    assert not any(a.path == "adapter" for a in client.list_artifacts(run.info.run_id))  # nothing half-written


def test_a_sweep_fails_the_trial_whose_plugin_breaks_and_goes_on(tmp_path, flaky):
    path = _write(tmp_path, search={"fitness.terms.0.params.fail": {"type": "categorical", "choices": [True, False]}},
                  sweep={"pruner": "none", "baseline": True, "sampler": "random"}, name="flaky")
    evolora.sweep(path, n_trials=2, progress=False, storage=str(tmp_path / "journal.log"),
                  tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", checkpoint_dir=str(tmp_path / "checkpoints"))
    study = optuna.load_study(study_name="flaky", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))))
    trials = study.get_trials()
    # two complete trials asked for; the failed ones do not count, and the sweep went on past each
    assert len(trials) > 2 and trials[0].params == {"fitness.terms.0.params.fail": True}  # the file's own value first
    for t in trials:
        if t.params["fitness.terms.0.params.fail"]:
            assert t.state == optuna.trial.TrialState.FAIL
            assert t.user_attrs[ATTR + "failure"] == ("FitnessTermError: fitness term 'flaky_pairs' returned nan "
                                                      "for the batch: not finite")
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2
