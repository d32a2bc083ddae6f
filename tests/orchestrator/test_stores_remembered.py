"""Stores a user named are remembered: ``$MLFLOW_TRACKING_URI`` is the default store of every command (a flag
wins), and the follow-up command a run prints works as printed; ``evolora --version`` answers."""

import shlex

import pytest
import yaml

from evolora.orchestrator.cli.commands import main
from evolora.orchestrator.tracking.runlog import default_tracking_uri

from ..conftest import run_cli_in, tiny_study


def test_mlflow_tracking_uri_is_the_default_store_and_a_flag_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        default_tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlruns').resolve()}/mlflow.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert default_tracking_uri() == "sqlite:////elsewhere/mlflow.db"
    assert default_tracking_uri(tmp_path).startswith(f"sqlite:///{tmp_path.resolve()}")


def _printed_export(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith("export: evolora export"))
    return shlex.split(line.removeprefix("export: evolora "))


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_export_command_a_run_prints_works_as_printed(tmp_path, monkeypatch, capsys, how):
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_study(tmp_path)))
    flag = []
    if how == "env":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        flag = ["--tracking-uri", uri]
    assert run_cli_in(tmp_path, ["run", "s.yaml", "--no-progress", *flag]) == 0
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing went to ./mlruns
    argv = _printed_export(capsys.readouterr().out)
    assert run_cli_in(tmp_path, argv) == 0  # pasted as printed, in the same shell
    assert (tmp_path / argv[argv.index("--out") + 1] / "adapter_config.json").is_file()


def test_version(capsys):
    import evolora

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"evolora {evolora.__version__}"
    assert evolora.__version__ != "0+unknown"  # the installed distribution's
