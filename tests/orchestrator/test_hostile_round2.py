"""Hostile input, round 2: the defaults that could swap a user's data, results that could be silently wrong,
work that could be lost, and input that must be one line and exit 2. One case per defect class (and its
family), each asserting what a user sees: the exit code, the one line naming the field and the value (no
traceback), the MLflow run's final status, and that nothing was written outside the store or lost."""

import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

import evolora
from evolora.evolution.checkpoint import CheckpointError, save_checkpoint
from evolora.evolution.errors import ConfigError, EvoloraError
from evolora.fitness import FITNESS_TERMS, load_pairs
from evolora.fitness.causal import load_texts
from evolora.fitness.pairs import NegMSETerm, PairOutputs, Pairs, score_range
from evolora.fitness.plugins import FitnessTermError, term_class
from evolora.orchestrator.cli.commands import _closed_pipe_is_fine, _PipeSafe
from evolora.orchestrator.run.trial import (
    CHECKPOINT_TAG,
    INCOMPLETE_TAG,
    checkpoint_identity,
    load_checkpoint,
)
from evolora.orchestrator.study.load import load_study, parse_study, validation_source

from ..conftest import STSB, make_spec, run_cli_in, tiny_study

ROOT = Path(__file__).resolve().parents[2]


def _pairs_csv(
    path: Path, rows: int = 60, scale: float = 5.0, start: int = 0, constant: float | None = None
) -> Path:
    """Real STS-B pairs with their gold scores on another scale (×scale/5), or every score ``constant``."""
    src = load_pairs(STSB / "sts-train.csv", "t")
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence1", "sentence2", "score"])
        for i in range(start, start + rows):
            w.writerow(
                [
                    src.s1[i],
                    src.s2[i],
                    constant if constant is not None else src.gold[i] * scale / 5.0,
                ]
            )
    return path


def _write_study(tmp_path: Path, **over) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp_path, **over)))
    return path


def _one_line_error(capsys, field: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith(f"evolora: error: {field}")
        and "Traceback" not in err[0]
    ), err
    return err[0]


def _runs(uri: str):
    client = MlflowClient(uri)
    exps = client.search_experiments()
    return client, client.search_runs([e.experiment_id for e in exps]) if exps else []


# ---- 1. a user's own train data is never validated on a packaged file ---------------------------------------
def test_own_train_data_is_validated_on_itself_never_on_the_packaged_sts_dev(tmp_path):
    mine = _pairs_csv(tmp_path / "mine.csv")
    cfg = parse_study({"data": {"train_path": str(mine)}}, tmp_path)
    # drawn from the user's own pairs
    assert cfg.data.dev_path is None and cfg.data.val_fraction == 0.1
    assert str(mine) in validation_source(cfg) and "val_fraction" in validation_source(cfg)
    packaged = parse_study({}, tmp_path)  # the packaged train split keeps the packaged dev split
    assert packaged.data.val_fraction is None and packaged.data.dev_path.endswith("sts-dev.csv")
    own_dev = parse_study({"data": {"train_path": str(mine), "dev_path": str(mine)}}, tmp_path)
    assert own_dev.data.dev_path == str(mine) and own_dev.data.val_fraction is None
    prompts = tmp_path / "prompts.jsonl"  # a causal study's own prompts too
    prompts.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(30)))
    causal = parse_study(
        {
            "model": {"base": "lfm2-tiny", "kind": "causal"},
            "data": {"train_path": str(prompts)},
            "fitness": {"terms": [{"name": "likelihood"}]},
            "validation": {"metric": "likelihood"},
        },
        tmp_path,
    )
    assert causal.data.val_fraction == 0.1 and causal.data.dev_path is None


# ---- 2. labels on the data's own scale ------------------------------------------------------------------------
def test_neg_mse_reads_the_labels_scale_from_the_data_not_from_sts_b(tmp_path):
    cos = np.array([0.1, 0.5, 0.9, 0.3])
    unit = np.array([0.0, 0.5, 1.0, 0.2])
    for scale in (1.0, 5.0, 100.0):  # the same pairs on a 0–1, 0–5 and 0–100 scale: one value
        gold = unit * scale
        pairs = Pairs(("a",) * 4, ("b",) * 4, gold)
        rng = score_range([pairs], None)
        assert rng == (0.0, scale)
        value = NegMSETerm()(PairOutputs(cos, pairs.gold, pairs.with_range(rng)))
        assert value == pytest.approx(-np.mean((cos - unit) ** 2))
    # STS-B files: its own scale
    assert load_pairs(STSB / "sts-dev.csv", "d").score_range == (
        0.0,
        5.0,
    )
    p = Pairs(("a",) * 2, ("b",) * 2, np.array([0.2, 0.4]))
    assert score_range([p], [0, 1]) == (0.0, 1.0)
    with pytest.raises(ConfigError, match=r"^data.score_range: a label lies outside \[0, 0.3\]"):
        score_range([p], [0, 0.3])
    with pytest.raises(
        ConfigError, match="^data.score_range: every label is 2: the scores have no range"
    ):
        score_range([Pairs(("a",) * 2, ("b",) * 2, np.array([2.0, 2.0]))], None)
    with pytest.raises(ConfigError, match="^data.score_range: must be"):
        parse_study({"data": {"score_range": [1, 0]}}, tmp_path)


def test_a_task_on_0_100_labels_scores_neg_mse_as_on_the_0_5_ones(tmp_path):
    from evolora.fitness import build_task

    five, hundred = (
        _pairs_csv(tmp_path / "five.csv"),
        _pairs_csv(tmp_path / "hundred.csv", scale=100.0),
    )
    values = []
    for path in (five, hundred):
        spec = make_spec(
            base="minilm",
            rank=2,
            alpha=4,
            layers=(5,),
            train_path=str(path),
            dev_path=str(path),
            train_subset=16,
            dev_subset=16,
            terms=(("stsb_neg_mse", 1.0),),
            validation="stsb_neg_mse",
        )
        task = build_task(spec)
        values.append(task.evaluate([task.seed_genome()], 0)[0][0])
    assert values[0] == pytest.approx(values[1], abs=1e-9)


# ---- 3. plug-ins read evolora's arrays, never write them ---------------------------------------------------
def normalise_in_place(cosines, score, **kwargs):
    score /= 5.0  # a common numpy habit: it must not reach the stored labels
    return float(np.corrcoef(cosines, score)[0, 1])


def test_a_plugin_writing_into_its_arguments_fails_naming_itself_and_the_labels_stay(tmp_path):
    pairs = load_pairs(STSB / "sts-dev.csv", "d").take(np.arange(8))
    before = pairs.gold.copy()
    term = term_class("normalise_in_place", normalise_in_place, "python test")()
    out = PairOutputs(np.linspace(0, 1, 8), pairs.gold, pairs, np.ones((8, 2)), np.ones((8, 2)))
    with pytest.raises(FitnessTermError, match="'normalise_in_place'.*read-only"):
        term(out)
    assert np.array_equal(pairs.gold, before) and np.array_equal(out.gold, before)
    for a in (out.cos, out.gold, out.emb1, out.emb2, pairs.gold):
        assert not a.flags.writeable


# ---- 4. an undefined metric is refused; a sweep ends whatever its trials do ------------------------------------
@pytest.mark.parametrize(
    "rows, constant, why", [(30, 3.0, "every score is 3"), (1, None, "1 pair")]
)
@pytest.mark.parametrize("metric", ["stsb_spearman", "stsb_pearson"])
def test_a_validation_split_where_the_metric_is_undefined_is_refused_before_anything_is_written(
    tmp_path, capsys, rows, constant, why, metric
):
    flat = _pairs_csv(tmp_path / "flat.csv", rows=rows, constant=constant)
    path = _write_study(tmp_path, data__dev_path=str(flat), validation__metric=metric)
    for argv in (
        ["run", str(path), "--no-progress"],
        ["sweep", str(path), "--n-trials", "1", "--no-progress"],
    ):
        assert run_cli_in(tmp_path, argv) == 2
        line = _one_line_error(
            capsys, f"data.dev_path: {metric} is undefined on the validation split ({why})"
        )
        assert "flat.csv" in line
        assert not (tmp_path / "mlruns").exists()


def test_a_metric_that_is_nan_for_the_base_model_is_refused_before_the_run_exists(tmp_path, capsys):
    evolora.register_pair_metric(
        "nan_on_validation",
        lambda cosines, score, **kw: (
            float(np.mean(score) * 0 + 1) if len(score) != 40 else float("nan")
        ),
    )
    try:
        # dev_subset 40: nan there
        path = _write_study(tmp_path, validation__metric="nan_on_validation")
        assert run_cli_in(tmp_path, ["run", str(path), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "'nan_on_validation' returned nan" in err and "Traceback" not in err
        assert not (tmp_path / "mlruns").exists()  # refused before its MLflow run was made
    finally:
        FITNESS_TERMS.unregister("nan_on_validation")


def test_a_nan_value_counts_as_a_failed_trial_and_a_sweep_stops_after_its_failure_cap(tmp_path):
    from evolora.orchestrator.sweep.claims import check_failures as _check_failures
    from evolora.orchestrator.sweep.claims import failure_cap
    from evolora.orchestrator.sweep.context import SweepContext
    from evolora.orchestrator.sweep.record import attrs
    from evolora.orchestrator.sweep.worker import _outcome

    cfg = load_study(_write_study(tmp_path))
    ctx = SweepContext(cfg, 2, str(tmp_path / "j.log"))

    class Result:
        champion_val, base_val, best_fitness, champion = (
            float("nan"),
            0.5,
            0.1,
            np.zeros(2, np.float32),
        )

    state, fields, _ = _outcome(
        ctx, None, type("Outcome", (), {"result": Result(), "test": None, "objectives": None})
    )
    assert state.name == "FAIL" and "nan" in fields["failure"]
    study = optuna.create_study(study_name="cap", storage=f"sqlite:///{tmp_path / 'o.db'}")
    for i in range(failure_cap(2)):
        _check_failures(ctx, study)  # under the cap: goes on
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                user_attrs=attrs(failure=f"ValueError: broken {i}"),
            )
        )
    with pytest.raises(
        EvoloraError,
        match=r"5 trials of study 'tiny' failed \(a sweep stops after 5\); last: ValueError: broken 4",
    ):
        _check_failures(ctx, study)


# ---- 6. a checkpoint belongs to one study --------------------------------------------------------------------
def test_a_checkpoint_of_another_study_of_the_same_name_is_never_adopted(tmp_path):
    from evolora.orchestrator.sweep.context import SweepContext
    from evolora.orchestrator.sweep.worker import open_study

    cfg = load_study(_write_study(tmp_path, name="same"))
    ctxs = [
        SweepContext(
            cfg, 1, str(tmp_path / f"journal-{i}.log"), checkpoint_dir=str(tmp_path / "ck")
        )
        for i in (0, 1)
    ]
    for c in ctxs:
        open_study(c)
    assert ctxs[0].study_uid and ctxs[1].study_uid and ctxs[0].study_uid != ctxs[1].study_uid
    assert ctxs[0].checkpoint(0) != ctxs[1].checkpoint(0)  # two storages, one directory: two files
    reopened = SweepContext(
        cfg, 1, str(tmp_path / "journal-0.log"), checkpoint_dir=str(tmp_path / "ck")
    )
    open_study(reopened)
    # the same study: its own checkpoints again
    assert reopened.checkpoint(0) == ctxs[0].checkpoint(0)
    conf = {"name": "same", "seed": 0}
    mine = checkpoint_identity(conf, ctxs[0].checkpoint_owner)
    save_checkpoint(tmp_path / "c.npz", {"loop": {"gen": 0}, "run_id": "r", "config": mine})
    assert load_checkpoint(tmp_path / "c.npz", mine)["run_id"] == "r"
    with pytest.raises(CheckpointError, match="written for another config"):
        load_checkpoint(tmp_path / "c.npz", checkpoint_identity(conf, ctxs[1].checkpoint_owner))


# ---- 7. YAML as the user wrote it -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, field, message",
    [
        ("lora: {rank: true}", "lora.rank", "a boolean is not a number (write a number), got True"),
        ("model: {threads: yes}", "model.threads", "got 'yes'"),
        ("lora: {layers: [4, true]}", "lora.layers", "a boolean is not a number"),
        ("evolution: {population: off}", "evolution.population", "got 'off'"),
        ("data: {seed: false}", "data.seed", "a boolean is not a number"),
    ],
)
def test_a_boolean_is_never_a_number_and_errors_echo_what_was_written(
    tmp_path, text, field, message, capsys
):
    path = tmp_path / "s.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_study(path)
    assert (
        str(e.value).startswith(f"{field}: ")
        and str(e.value).endswith(message)
        or message in str(e.value)
    )
    assert run_cli_in(tmp_path, ["run", str(path)]) == 2
    _one_line_error(capsys, field)
    assert not (tmp_path / "mlruns").exists()


def test_plain_scalars_follow_yaml_1_2(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: NO\nseed: 012\nevolution: {es: {sigma: 1e-3}, population: 0x10}\n"
        "mlflow: {experiment: on}\nmodel: {trunk_memo: true}\n"
    )
    cfg = load_study(path)
    assert cfg.name == "NO" and cfg.seed == 12 and cfg.evolution.es.sigma == 0.001
    assert (
        cfg.evolution.population == 16
        and cfg.mlflow.experiment == "on"
        and cfg.model.trunk_memo is True
    )
    # YAML 1.1 reads 80 and 1000; 1.2 the text
    path.write_text("data: {train_genre: 1:20, dev_genre: 1_000}\n")
    assert (load_study(path).data.train_genre, load_study(path).data.dev_genre) == ("1:20", "1_000")
    path.write_text("name: 1:20\n")
    with pytest.raises(ConfigError, match="got '1:20'$"):  # what the user wrote, not 80
        load_study(path)


# ---- 8. a stopped run keeps what it completed, and resumes ---------------------------------------------------
class _Breaks:
    """A pair metric that raises on its ``at``-th call (a remote scorer going down mid-run)."""

    def __init__(self, at: int) -> None:
        self.calls, self.at = 0, at

    def __call__(self, cosines, score, **kwargs):
        self.calls += 1
        if self.at and self.calls == self.at:
            raise RuntimeError("scorer unreachable")
        return float(np.corrcoef(cosines, score)[0, 1])


@pytest.mark.slow
def test_a_run_stopped_by_a_failing_term_logs_its_champion_and_resumes_to_the_uninterrupted_answer(
    tmp_path, capsys
):
    pop, gens = 4, 6
    breaks = _Breaks(at=pop * 3 + 1)  # during generation 3 of 0..5
    evolora.register_pair_metric("breaks_once", breaks)
    try:
        path = _write_study(
            tmp_path,
            fitness__terms=[{"name": "breaks_once"}],
            evolution__generations=gens,
            evolution__population=pop,
        )
        uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
        assert run_cli_in(tmp_path, ["run", str(path), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert (
            "fitness term 'breaks_once'" in err
            and "scorer unreachable" in err
            and "Traceback" not in err
        )
        client, (run,) = _runs(uri)
        tags = run.data.tags
        assert (
            run.info.status == "FAILED"
            and "stopped after generation 2 of 5" in tags[INCOMPLETE_TAG]
        )
        logged = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {
            "adapter",
            "champion.npy",
            "lineage.parquet",
            "error.txt",
        } <= logged and "evolora.model_uri" in tags
        ck = Path(tags[CHECKPOINT_TAG])
        assert ck.is_file() and ck.is_relative_to(tmp_path / "mlruns")  # beside the store
        breaks.at = 0  # the scorer is back
        assert (
            run_cli_in(tmp_path, ["run", str(path), "--no-progress", "--resume", run.info.run_id])
            == 0
        )
        out = capsys.readouterr().out
        assert f"run_id: {run.info.run_id}" in out
        client, (resumed,) = _runs(uri)
        assert (
            resumed.info.status == "FINISHED"
            and INCOMPLETE_TAG not in resumed.data.tags
            and not ck.exists()
        )
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fit_best")]
        assert steps == list(range(gens))  # every generation once
        # the same study never stopped: the same champion, bit for bit
        other = tmp_path / "straight"
        other.mkdir()
        assert run_cli_in(other, ["run", str(path), "--no-progress"]) == 0
        capsys.readouterr()
        oc, (straight,) = _runs(f"sqlite:///{other / 'mlruns' / 'mlflow.db'}")
        a = np.load(client.download_artifacts(run.info.run_id, "champion.npy", str(tmp_path)))
        b = np.load(oc.download_artifacts(straight.info.run_id, "champion.npy", str(other)))
        assert np.array_equal(a, b)
        # resuming a finished run, or with another study, is refused
        assert run_cli_in(tmp_path, ["run", str(path), "--resume", run.info.run_id]) == 2
        assert "nothing to resume" in _one_line_error(capsys, "--resume")
    finally:
        FITNESS_TERMS.unregister("breaks_once")


@pytest.mark.slow
def test_two_signals_50_ms_apart_never_leave_a_run_running_and_the_champion_is_logged(tmp_path):
    import signal
    import time

    path = _write_study(tmp_path, evolution__generations=400)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolora", "run", str(path), "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    cks = tmp_path / "mlruns" / "checkpoints" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = list(cks.glob("*.npz")) if cks.is_dir() else []
        if found and _gen(found[0]) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode in (130, 143) and "Traceback" not in err, err[-2000:]
    client, (run,) = _runs(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert run.info.status == "KILLED" and INCOMPLETE_TAG in run.data.tags
    assert "adapter" in {a.path for a in client.list_artifacts(run.info.run_id)}


def _gen(ck: Path) -> int:
    from evolora.evolution.checkpoint import load_checkpoint_file

    try:
        return int(load_checkpoint_file(ck)["loop"]["gen"])
    except Exception:
        return -1


# ---- 9. stores, locations and numbers: one line, exit 2, before any work -------------------------------------
@pytest.mark.parametrize(
    "argv, field",
    [
        (["sweep", "S", "--n-trials", "2", "--storage", "study.db"], "--storage"),
        (["sweep", "S", "--n-trials", "2", "--storage", "DEV"], "--storage"),
        (["sweep", "S", "--n-trials", "2", "--storage", "mysql://u:p@localhost/db"], "--storage"),
        (["sweep", "S", "--n-trials", "2", "--storage", "redis://localhost:6379"], "--storage"),
        (["sweep", "S", "--n-trials", "2", "--storage", "sqlite://relative.db"], "--storage"),
        (["run", "S", "--tracking-uri", "file:///tmp/mlruns"], "--tracking-uri"),
        (["run", "S", "--register", "../evil"], "--register"),
        (["sweep", "S", "--n-trials", "2", "--timeout", "0"], "--timeout"),
        (["sweep", "S", "--n-trials", "2", "--timeout", "nan"], "--timeout"),
        (["sweep", "S", "--n-trials", "2", "--workers", "3"], "--workers"),
        (["sweep", "S", "--n-trials", "2", "--checkpoint-dir", "FILE/ck"], "--checkpoint-dir"),
        (["run", "S", "--tracking-uri", "sqlite:///FILE/mlflow.db"], "--tracking-uri"),
        (["ui", "--port", "70000"], "--port"),
        (["ui", "--port", "5000", "--dashboard-port", "5000"], "--dashboard-port"),
    ],
)
def test_bad_stores_locations_and_numbers_are_one_line_and_exit_2_with_nothing_written(
    tmp_path, argv, field, capsys
):
    study = _write_study(tmp_path)
    (tmp_path / "FILE").write_text("a file, not a directory")
    argv = [
        str(study)
        if a == "S"
        else str(STSB / "sts-dev.csv")
        if a == "DEV"
        else a.replace("FILE", str(tmp_path / "FILE"))
        for a in argv
    ]
    before = {p for p in tmp_path.rglob("*")}
    assert run_cli_in(tmp_path, argv) == 2
    _one_line_error(capsys, field)
    assert {p for p in tmp_path.rglob("*")} == before


def test_search_entries_optuna_would_reject_at_sample_time_are_refused_at_load(tmp_path):
    for entry, field in (
        ({"lora.rank": {"type": "int", "low": 2, "high": 8, "step": 0.5}}, "search.lora.rank.step"),
        (
            {"data.dev_path": {"type": "categorical", "choices": ["dev.csv"]}},
            "search.data.dev_path.choices",
        ),
    ):
        with pytest.raises(ConfigError) as e:
            parse_study({"search": entry}, tmp_path)
        assert e.value.path == field


def test_a_deleted_experiment_is_refused_before_the_model_loads(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    from evolora.orchestrator.tracking.client import get_client

    client = get_client(uri)
    client.delete_experiment(client.create_experiment("tests"))
    path = _write_study(tmp_path)
    capsys.readouterr()  # what making the store said
    assert run_cli_in(tmp_path, ["run", str(path), "--tracking-uri", uri]) == 2
    assert "is deleted" in _one_line_error(capsys, "mlflow.experiment")
    assert not MlflowClient(uri).search_runs(
        [e.experiment_id for e in MlflowClient(uri).search_experiments(view_type=3)]
    )


def test_a_reader_closing_the_pipe_is_not_a_failure_and_the_command_goes_on():
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise ValueError("no descriptor")

    done = []

    def handler(args):
        print("run_id: x")
        done.append("registered")  # the work after the first line still happens
        print("model: y")
        return 0

    saved = sys.stdout
    sys.stdout = Closed()
    try:
        assert _closed_pipe_is_fine(handler, None) == 0
    finally:
        sys.stdout = saved
    assert done == ["registered"] and isinstance(_PipeSafe(saved), _PipeSafe)


# ---- 10. data files as users have them ------------------------------------------------------------------------
def test_data_files_as_users_have_them(tmp_path):
    bom = tmp_path / "excel.csv"
    bom.write_bytes(
        "\ufeffsentence1,sentence2,score\nA cat.,A dog.,1\nA man.,A woman.,2\n".encode("utf-8")
    )
    assert load_pairs(bom, "data.train_path").s1 == ("A cat.", "A man.")
    line_sep = tmp_path / "u2028.jsonl"
    line_sep.write_text(
        json.dumps({"prompt": "one\u2028line"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"prompt": "two"})
        + "\n",
        encoding="utf-8",
    )
    assert [e.prompt for e in load_texts(line_sep, "data.train_path")] == ["one\u2028line", "two"]
    lone = tmp_path / "lone.jsonl"
    lone.write_text('{"prompt": "ok"}\n{"prompt": "bad \\ud800 here"}\n')
    with pytest.raises(
        ConfigError,
        match=r"^data.train_path: .*lone.jsonl: line 2: holds a lone surrogate \(U\+D800",
    ):
        load_texts(lone, "data.train_path")
    tsv = tmp_path / "quotes.tsv"
    tsv.write_text(
        'sentence1\tsentence2\tscore\n"Quoted start\tplain\t1\nsecond\t"another\t2\n',
        encoding="utf-8",
    )
    # quotes are characters in TSV
    assert load_pairs(tsv, "data.train_path").s1 == (
        '"Quoted start',
        "second",
    )
    short = tmp_path / "short.tsv"
    short.write_text("sentence1\tsentence2\tscore\na\tb\t1\nc\td\n")
    with pytest.raises(ConfigError, match="short.tsv: line 3: fewer fields"):
        load_pairs(short, "data.train_path")
    fifo = tmp_path / "pairs.csv"
    os.mkfifo(fifo)
    result = []
    t = threading.Thread(
        target=lambda: result.append(_error_of(load_pairs, fifo, "data.train_path")), daemon=True
    )
    t.start()
    t.join(timeout=10)
    assert result and result[0].startswith("data.train_path: is not a regular file or directory"), (
        "read forever"
    )


def _error_of(fn, *args) -> str:
    try:
        fn(*args)
    except ConfigError as e:
        return str(e)
    return "no error"


# ---- 11. plug-ins that print or exit at import ----------------------------------------------------------------
def test_plugins_that_print_or_exit_at_import_leave_terms_json_valid_and_are_named(tmp_path):
    site = tmp_path / "site"
    (site / "noisy_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "noisy_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: noisy-plugin\nVersion: 1.0\n"
    )
    (site / "noisy_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[evolora.fitness]\nchatty = noisy_plugin:chatty\nquitter = noisy_quitter:quitter\n"
    )
    (site / "noisy_plugin.py").write_text(
        textwrap.dedent('''
        print("hello from noisy_plugin")
        def chatty(cosines, score, **kwargs):
            """A plug-in that talks at import."""
            return 0.0
    ''')
    )
    (site / "noisy_quitter.py").write_text("import sys\nsys.exit(3)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "evolora", "terms", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(done.stdout)}  # valid JSON: nothing else on stdout
    assert rows["chatty"]["doc"] == "A plug-in that talks at import."
    assert "'quitter'" in rows["quitter"]["doc"] and "SystemExit: 3" in rows["quitter"]["doc"]
    assert "hello from noisy_plugin" in done.stderr


# ---- 12. the Python API -------------------------------------------------------------------------------------
def test_the_api_refuses_one_string_where_a_list_of_overrides_belongs(tmp_path):
    path = _write_study(tmp_path)
    with pytest.raises(ConfigError, match="^overrides: expected a list of PATH=VALUE strings"):
        evolora.study(path, "evolution.generations=2")
    with pytest.raises(ConfigError, match="^overrides: "):
        evolora.run(path, "evolution.generations=2")
    assert evolora.study(path, ["evolution.generations=2"]).evolution.generations == 2


def test_a_sweep_whose_workers_cannot_see_a_script_term_fails_loudly_before_anything_is_written(
    tmp_path,
):
    study = _write_study(
        tmp_path,
        fitness__terms=[{"name": "only_in_main"}],
        search={"evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1}},
    )
    script = tmp_path / "sweep_script.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        import evolora

        def only_in_main(cosines, score, **kwargs):
            return 0.0

        if __name__ == "__main__":
            evolora.register_pair_metric("only_in_main", only_in_main)  # not at module level: workers lack it
            try:
                evolora.sweep({str(study)!r}, n_trials=2, workers=2, progress=False,
                              storage={str(tmp_path / "j.log")!r})
            except evolora.ConfigError as e:
                print(e)
                sys.exit(2)
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout.startswith(
        "workers: term(s) only_in_main registered by this script do not exist in worker"
    )
    assert not (tmp_path / "j.log").exists() and not (tmp_path / "mlruns").exists()


# ---- generated: YAML scalars where numbers belong, in-place writes by plug-ins --------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_YAML_11_ONLY = ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "OFF", "Y", "N"]
_SCALARS = st.one_of(
    st.sampled_from(_YAML_11_ONLY + ["true", "false", "True", "FALSE"]),
    st.integers(0, 5000).map(str),
    st.from_regex(r"\A0[0-7]{1,3}\Z"),  # YAML 1.1 octal
    st.from_regex(r"\A[1-9]:[0-5][0-9]\Z"),  # YAML 1.1 sexagesimal
    st.from_regex(r"\A[1-9]_[0-9]{3}\Z"),  # YAML 1.1 digit separators
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=_SCALARS,
    path=st.sampled_from(
        ["lora.rank", "data.batch_size", "data.train_subset", "seed", "mlflow.flush_every"]
    ),
)
def test_a_number_field_holds_the_number_written_or_names_the_field_and_what_was_written(
    tmp_path, text, path
):
    section, _, key = path.rpartition(".")
    doc = f"{section}: {{{key}: {text}}}\n" if section else f"{key}: {text}\n"
    study = tmp_path / "gen.yaml"
    study.write_text(doc)
    try:
        cfg = load_study(study)
    except ConfigError as e:
        assert e.path == path and "\n" not in str(e), str(e)
        if text.lower() in ("true", "false"):
            assert "a boolean is not a number" in str(e)
        else:
            assert str(e).endswith(f"got {text!r}") or str(e).endswith(f"got {int(text, 10)}"), str(
                e
            )
        return
    value = cfg.model_dump()
    for k in path.split("."):
        value = value[k]
    # only decimal digits (Python's _ separators allowed) become a number, and that number: never octal, base 60
    assert text.replace("_", "").isdigit() and value == int(text, 10)


_WRITES = [
    lambda a: a.__imul__(2),
    lambda a: a.__itruediv__(5),
    lambda a: a.sort(),
    lambda a: a.fill(0),
    lambda a: np.clip(a, 0, 1, out=a),
    lambda a: a.__setitem__(0, 1.0),
]


@settings(max_examples=60, deadline=None)
@given(
    arg=st.sampled_from(["cosines", "score", "embeddings1", "embeddings2"]),
    write=st.sampled_from(_WRITES),
)
def test_any_in_place_write_by_a_plugin_fails_naming_it_and_changes_nothing(arg, write):
    def writer(cosines, score, embeddings1, embeddings2, **kwargs):
        write(
            {
                "cosines": cosines,
                "score": score,
                "embeddings1": embeddings1,
                "embeddings2": embeddings2,
            }[arg]
        )
        return 0.0

    pairs = Pairs(("a",) * 4, ("b",) * 4, np.array([1.0, 2.0, 3.0, 4.0]), score_range=(0.0, 5.0))
    emb = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = PairOutputs(np.array([0.1, 0.9, 0.4, 0.3]), pairs.gold, pairs, emb, emb + 1)
    snapshot = [x.copy() for x in (out.cos, out.gold, out.emb1, out.emb2)]
    with pytest.raises(FitnessTermError, match="'writer'"):
        term_class("writer", writer, "python test")()(out)
    assert all(
        np.array_equal(a, b) for a, b in zip(snapshot, (out.cos, out.gold, out.emb1, out.emb2))
    )


@pytest.mark.slow
def test_a_signal_while_ray_actors_start_ends_the_run_and_its_driver_cleanly(tmp_path):
    import signal
    import time

    import psutil
    import ray  # noqa: F401 - installed by the README's setup: a missing ray fails here, it never skips

    path = _write_study(tmp_path, ray={"actors": 1, "threads": 1})
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evolora", "run", str(path), "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    me, driver, deadline = psutil.Process(proc.pid), None, time.time() + 300
    while driver is None and time.time() < deadline and proc.poll() is None:
        driver = next(
            (
                c
                for c in me.children()
                if "evolora.orchestrator.distributed.driver" in " ".join(c.cmdline())
            ),
            None,
        )
        time.sleep(0.05)
    assert driver is not None, "the run should be starting its Ray driver"
    time.sleep(1.0)  # inside ray.init / the actor's task build
    os.kill(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=180)[1]
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "evolora: interrupted", err[
        -2000:
    ]
    gone = psutil.wait_procs([driver], timeout=60)[1] == []
    assert gone, "the Ray driver outlived the run"
    client, runs = (
        _runs(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
        if (tmp_path / "mlruns").exists()
        else (None, [])
    )
    assert all(r.info.status != "RUNNING" for r in runs)
