"""Stores a user named are remembered: ``$MLFLOW_TRACKING_URI`` is the default store of every command (a flag
wins), and the follow-up command a run prints works as printed; ``evolora --version`` answers."""

import os
import shlex
import subprocess
import sys

import pytest
import yaml

from evolora.orchestrator.cli.commands import main
from evolora.orchestrator.tracking.runlog import default_tracking_uri

from ..conftest import run_cli_in, tiny_study


def test_the_users_mlflow_tracking_uri_is_the_default_store(tmp_path, monkeypatch):
    import evolora.orchestrator.tracking.runlog as runlog

    mlruns = f"sqlite:///{(tmp_path / 'mlruns').resolve()}/mlflow.db"
    monkeypatch.setattr(runlog, "_USER_TRACKING_URI", None)
    assert default_tracking_uri(tmp_path) == mlruns
    monkeypatch.setattr(runlog, "_USER_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert default_tracking_uri() == "sqlite:////elsewhere/mlflow.db"
    assert default_tracking_uri(tmp_path) == mlruns
    # what MLflow writes into the variable later (its set_tracking_uri does) is not the user's choice
    monkeypatch.setattr(runlog, "_USER_TRACKING_URI", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////last/used.db")
    assert default_tracking_uri() != "sqlite:////last/used.db"


def _printed_export(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith("export: evolora export"))
    return shlex.split(line.removeprefix("export: evolora "))


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_export_command_a_run_prints_works_as_printed(tmp_path, how):
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_study(tmp_path)))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    flag = ["--tracking-uri", uri] if how == "flag" else []
    if how == "env":
        env["MLFLOW_TRACKING_URI"] = uri
    # a fresh process, as a user's shell starts one: the variable is read when evolora is imported
    run = [sys.executable, "-m", "evolora", "run", "s.yaml", "--no-progress", *flag]
    out = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing went to ./mlruns
    argv = _printed_export(out.stdout)
    again = subprocess.run(  # pasted as printed, in the same shell
        [sys.executable, "-m", "evolora", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / argv[argv.index("--out") + 1] / "adapter_config.json").is_file()


def test_version(capsys):
    import evolora

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"evolora {evolora.__version__}"
    assert evolora.__version__ != "0+unknown"  # the installed distribution's


def test_a_sweep_without_a_search_space_of_one_seed_is_refused_and_writes_nothing(tmp_path, capsys):
    study = tiny_study(tmp_path, sweep__seeds="study")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    assert run_cli_in(tmp_path, ["sweep", "s.yaml", "--n-trials", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "search" in err and "sweep.seeds: study" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "s.yaml"]  # nothing written


def test_evolora_storage_is_the_default_optuna_storage_and_checkpoints_sit_beside_it(tmp_path):
    """``$EVOLORA_STORAGE`` is every command's Optuna storage when no ``--storage`` is given (a flag wins); a
    sweep's checkpoints default to a ``checkpoints`` folder beside a file storage; the sweep's printed export
    command works as printed in the same shell."""
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(
            {
                **tiny_study(tmp_path, name="env-store"),
                "search": {"evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1}},
            }
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        "EVOLORA_STORAGE": str(store / "journal.log"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
    }

    def evolora(*argv):
        return subprocess.run(
            [sys.executable, "-m", "evolora", *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )

    out = evolora("sweep", "s.yaml", "--n-trials", "1", "--no-progress")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (store / "journal.log").is_file() and not (tmp_path / "mlruns").exists()
    # the trial checkpointed there (a completed trial's checkpoint is removed; its folder stays)
    assert (store / "checkpoints" / "env-store").is_dir()
    line = next(ln for ln in out.stdout.splitlines() if "evolora export" in ln)
    argv = shlex.split(line[line.index("evolora export") :].removeprefix("evolora "))
    assert "--storage" not in argv  # the shell's variable names it
    again = evolora(*argv)
    assert again.returncode == 0, again.stderr[-2000:]
    # a flag wins over the variable: an empty storage elsewhere has no such study
    other = evolora("studies", "--storage", str(tmp_path / "other.log"))
    assert other.returncode == 2 and "other.log" in other.stderr
    listed = evolora("studies")
    assert listed.returncode == 0 and "env-store" in listed.stdout
