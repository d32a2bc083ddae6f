"""Commands that read create nothing: a typo'd ``--storage`` or ``--tracking-uri`` on ``studies``, ``export``,
``lineage`` is exit 2 naming the flag, and no store or directory appears. ``ui`` on a taken port says so
before starting anything. A source of one pair prints ``n/a``, not ``+nan pts``."""

import json
import socket
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from ..conftest import STSB, run_cli_in, tiny_study


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_reading_commands_on_a_store_that_is_not_there_create_nothing(tmp_path, capsys):
    before = _tree(tmp_path)
    cases = [
        (["studies", "--storage", str(tmp_path / "typo" / "journal.log")], "--storage"),
        (["studies", "--storage", f"sqlite:///{tmp_path / 'typo2' / 'optuna.db'}"], "--storage"),
        (
            [
                "export",
                "--run-id",
                "0" * 32,
                "--out",
                str(tmp_path / "out"),
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'typo3' / 'mlflow.db'}",
            ],
            "--tracking-uri",
        ),
        (
            [
                "export",
                "models:/x@champion",
                "--out",
                str(tmp_path / "out"),
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'typo4' / 'mlflow.db'}",
            ],
            "--tracking-uri",
        ),
        (
            [
                "export",
                "some-study",
                "--trial",
                "best",
                "--out",
                str(tmp_path / "out"),
                "--storage",
                str(tmp_path / "typo5.log"),
            ],
            "--storage",
        ),
        (
            ["reproduce", "some-study", "--trial", "0", "--storage", str(tmp_path / "typo6.log")],
            "--storage",
        ),
        (
            [
                "lineage",
                "0" * 32,
                "--best",
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'typo7' / 'mlflow.db'}",
            ],
            "--tracking-uri",
        ),
        (
            ["export", "--run-id", "0" * 32, "--out", str(tmp_path / "out")],
            "--tracking-uri",
        ),  # no ./mlruns yet
    ]
    for argv, field in cases:
        assert run_cli_in(tmp_path, argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"evolora: error: {field}") and err.count("\n") == 1, (argv, err)
        assert _tree(tmp_path) == before, argv  # not a directory, not an empty store
    # the default storage of a fresh directory: nothing to list, and nothing made
    assert run_cli_in(tmp_path, ["studies"]) == 0
    assert "no studies" in capsys.readouterr().out
    assert _tree(tmp_path) == before


def test_ui_on_a_taken_port_says_so_and_starts_nothing(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli_in(tmp_path, ["ui", "--port", str(port)]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("evolora: error: --port") and str(port) in out.err
    assert "http://" not in out.out  # no URL printed as if the UI were up


def test_a_source_of_one_pair_reads_n_a_not_nan(tmp_path, capsys):
    """The test split holds 20 headlines pairs and 1 answers-forums pair: a Spearman of one pair is undefined;
    it is printed n/a, tabled as null and not logged as a metric, and the other source is reported as ever."""
    rows = (STSB / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
    lines = [ln for ln in rows if ln.split("\t")[1] == "headlines"][:20]
    lines += [ln for ln in rows if ln.split("\t")[1] == "answers-forums"][:1]
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    study = tiny_study(
        tmp_path, data__test_path=str(tmp_path / "test.csv"), evolution__generations=2
    )
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert run_cli_in(tmp_path, ["run", "s.yaml", "--tracking-uri", uri, "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("test gain by source:"))
    assert (
        "answers-forums n/a (1 pair)" in line and "headlines " in line and "pts (20 pairs)" in line
    )
    assert "nan" not in out.lower()
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
    assert (
        "test_gain/headlines" in run.data.metrics
        and "test_gain/answers-forums" not in run.data.metrics
    )
    table = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "test_by_source.json", str(tmp_path / "t"))
        ).read_text()
    )
    row = dict(zip(table["columns"], next(r for r in table["data"] if r[0] == "answers-forums")))
    assert row["pairs"] == 1 and row["gain"] is None and row["champion"] is None
