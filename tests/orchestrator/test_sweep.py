"""`evolora sweep` / `reproduce` / `export --trial` / `studies` on the real MiniLM, real Optuna storages
(journal file, SQLite) and a real MLflow SQLite store."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from evolora.evolution.checkpoint import load_checkpoint_file
from evolora.orchestrator.errors import TrialPruned
from evolora.orchestrator.sweep.worker import OptunaReporter

from ..conftest import run_cli_in as _in
from ..conftest import tiny_study, trial_checkpoint

SEARCH = {
    "evolution.mutation_sigma": {"type": "float", "low": 0.005, "high": 0.1, "log": True},
    "evolution.population": {"type": "int", "low": 3, "high": 5},
    "lora.layers": {"type": "categorical", "choices": [[5], [4, 5]]},
    "fitness.terms.0.weight": {"type": "float", "low": 0.5, "high": 1.0},
}


def _study(tmp_path, name="sw", **over) -> Path:
    s = tiny_study(tmp_path, **over)
    s["name"] = name
    s["search"] = SEARCH
    s["sweep"] = {"pruner": "none"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(s))
    return path


def _mlflow(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tests")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("evolora.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _journal(tmp_path, name="sw"):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "mlruns" / "optuna-journal.log"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def test_small_sweep_records_parent_children_params_and_curves(tmp_path):
    path = _study(tmp_path)
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "4", "--no-progress"]) == 0
    study = _journal(tmp_path)
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)
    client, parents, children = _mlflow(tmp_path)
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    by_number = {int(c.data.tags["optuna.trial_number"]): c for c in children}
    for t in study.trials:
        run = by_number[t.number]
        for k, v in t.params.items():
            assert run.data.params[k] == str(v), k
        assert run.data.tags["optuna.state"] == "COMPLETE"
        gens = json.loads(run.data.params["evolution.generations"])
        assert len(client.get_metric_history(run.info.run_id, "fit_best")) == gens
        assert run.data.metrics["val_best"] == t.value
        assert t.user_attrs["evolora:config"]["seed"] == t.user_attrs["evolora:seed"]
    # trials got different seeds and different sampled values
    assert len({t.user_attrs["evolora:seed"] for t in study.trials}) == 4
    assert len({t.params["evolution.mutation_sigma"] for t in study.trials}) == 4
    parent = client.get_run(parent.info.run_id)
    assert parent.data.tags["evolora.best_trial"] == str(study.best_trial.number)
    arts = {f.path for f in client.list_artifacts(parent.info.run_id, "study")}
    assert {
        "study/optimization_history.png",
        "study/optimization_history.html",
        "study/param_importances.png",
        "study/parallel_coordinate.png",
    } <= arts
    html = Path(
        client.download_artifacts(
            parent.info.run_id, "study/optimization_history.html", str(tmp_path / "h")
        )
    )
    text = html.read_text()
    # plotly.js embedded (megabytes of it), no script fetched from the internet: the page opens offline
    assert (
        len(text) > 1_000_000
        and '<script src="http' not in text
        and "<script src='http" not in text
    )
    child_arts = {f.path for f in client.list_artifacts(children[0].info.run_id)}
    assert {"adapter", "curves.png"} <= child_arts
    # resume: the same command does not redo anything; a larger total adds only the difference
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "4", "--no-progress"]) == 0
    assert len(_journal(tmp_path).trials) == 4
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "5", "--no-progress"]) == 0
    assert len(_journal(tmp_path).trials) == 5
    _, parents, children = _mlflow(tmp_path)
    assert len(parents) == 1 and len(children) == 5
    # export the best trial; list the studies
    assert (
        _in(tmp_path, ["export", str(path), "--trial", "best", "--out", str(tmp_path / "best")])
        == 0
    )
    assert (tmp_path / "best" / "adapter_model.safetensors").is_file()


def test_two_workers_make_exactly_n_trials_and_n_child_runs(tmp_path, capsys):
    path = _study(tmp_path, evolution__generations=2)
    assert (
        _in(tmp_path, ["sweep", str(path), "--n-trials", "6", "--workers", "2", "--no-progress"])
        == 0
    )
    study = _journal(tmp_path)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6)) and all(
        t.state.name == "COMPLETE" for t in study.trials
    )
    assert {t.user_attrs["evolora:config"]["model"]["threads"] for t in study.trials} == {1}
    assert len({t.user_attrs["evolora:pid"] for t in study.trials}) == 2  # both workers took trials
    _, parents, children = _mlflow(tmp_path)
    assert len(parents) == 1 and len(children) == 6
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(range(6))
    capsys.readouterr()
    assert _in(tmp_path, ["studies"]) == 0
    out = capsys.readouterr().out
    assert "sw" in out and "trials    6" in out


def test_sigkill_mid_trial_then_resume_gives_the_uninterrupted_result(tmp_path):
    path = _study(tmp_path, evolution__generations=10, data__train_subset=48)
    proc, _ = _start_and_wait(tmp_path, path)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    study = _journal(tmp_path)
    assert study.trials[0].state.name == "RUNNING"  # what a dead worker leaves behind
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "2", "--no-progress"]) == 0
    study = _journal(tmp_path)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 2 and states[0] == "FAIL"
    retry = next(t for t in study.trials if t.user_attrs.get("evolora:retry_of") == 0)
    assert retry.user_attrs["evolora:root"] == 0 and retry.params == study.trials[0].params
    # one MLflow child run per completed trial: the retry continued the killed trial's run
    client, _, children = _mlflow(tmp_path)
    assert len(children) == 2
    run = next(c for c in children if c.data.tags["optuna.trial_root"] == "0")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "fit_best")]
    assert steps == list(range(10))
    # the resumed trial's champion equals an uninterrupted run with the same seed, to the bit
    assert (
        _in(tmp_path, ["reproduce", str(path), "--trial", str(retry.number), "--no-progress"]) == 0
    )


def test_a_retry_keeps_its_killed_trials_thread_count_so_nothing_completed_is_lost(tmp_path):
    """Killed at one torch thread (as ``--workers 2`` runs each trial), resumed by a worker whose torch has two:
    the thread count is part of the trial's config (and of its exact numbers), so the retry takes the killed
    trial's, resumes its checkpoint and continues its run; the next new trial runs at the worker's own."""
    import torch

    path = _study(tmp_path, evolution__generations=10, data__train_subset=48)
    proc, _ = _start_and_wait(tmp_path, path, env={"OMP_NUM_THREADS": "1"})
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _journal(tmp_path).trials[0].user_attrs["evolora:config"]["model"]["threads"] == 1
    torch.set_num_threads(2)
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "2", "--no-progress"]) == 0
    study = _journal(tmp_path)
    retry = next(t for t in study.trials if t.user_attrs.get("evolora:retry_of") == 0)
    assert retry.state.name == "COMPLETE", retry.user_attrs.get("evolora:failure")
    # from the checkpoint, not from generation 0
    assert retry.user_attrs["evolora:resumed_from_gen"] >= 3
    assert retry.user_attrs["evolora:config"]["model"]["threads"] == 1
    new = [t for t in study.trials if t.number not in (0, retry.number)]
    assert [t.state.name for t in new] == ["COMPLETE"] and new[0].user_attrs["evolora:config"][
        "model"
    ]["threads"] == 2
    client, _, children = _mlflow(tmp_path)
    assert len(children) == 2  # the retry continued the killed trial's run
    run = next(c for c in children if c.data.tags["optuna.trial_root"] == "0")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fit_best")] == list(
        range(10)
    )


def _start_and_wait(tmp_path, path, min_gen=3, env=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [sys.executable, "-m", "evolora", "sweep", str(path), "--n-trials", "2", "--no-progress"]
    # SIGINT back to its default in the child: a test runner started in the background (`make test &`) has it
    # ignored, the child would inherit that and Python would then never raise KeyboardInterrupt
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline, gen = time.time() + 300, -1
    while time.time() < deadline and proc.poll() is None:
        ck = trial_checkpoint(tmp_path / "mlruns" / "checkpoints", "sw", 0)
        if ck.is_file():
            try:
                gen = int(load_checkpoint_file(ck)["loop"]["gen"])
            except Exception:
                gen = -1
            if gen >= min_gen:
                break
        time.sleep(0.05)
    assert proc.poll() is None and gen >= min_gen, "the sweep should still be inside trial 0"
    return proc, ck


def test_ctrl_c_marks_the_trial_closes_its_run_keeps_the_checkpoint_and_resumes(tmp_path):
    path = _study(tmp_path, evolution__generations=10, data__train_subset=48)
    proc, ck = _start_and_wait(tmp_path, path)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    study = _journal(tmp_path)
    t0 = study.trials[0]
    assert t0.state.name == "FAIL" and t0.user_attrs["evolora:failure"] == "interrupted"
    assert ck.is_file()
    client, parents, children = _mlflow(tmp_path)
    assert [c.info.status for c in children] == ["KILLED"] and children[0].data.tags[
        "optuna.state"
    ] == "FAIL"
    assert parents[0].info.status == "KILLED"
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "2", "--no-progress"]) == 0
    study = _journal(tmp_path)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 2
    client, _, children = _mlflow(tmp_path)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    run = next(c for c in children if c.data.tags["optuna.trial_root"] == "0")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fit_best")] == list(
        range(10)
    )


def test_reproduce_best_is_identical_and_a_changed_param_is_caught(tmp_path, capsys):
    path = _study(tmp_path, name="rep")
    db = tmp_path / "optuna.db"
    storage = f"sqlite:///{db}"
    assert (
        _in(
            tmp_path, ["sweep", str(path), "--n-trials", "2", "--storage", storage, "--no-progress"]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        _in(
            tmp_path, ["reproduce", "rep", "--trial", "best", "--storage", storage, "--no-progress"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "identical" in out and "NOT identical" not in out
    best = optuna.load_study(study_name="rep", storage=storage).best_trial
    with sqlite3.connect(db) as con:  # change one stored param: mutation sigma of the best trial
        con.execute(
            "UPDATE trial_params SET param_value = param_value * 1.5 WHERE param_name = "
            "'evolution.mutation_sigma' AND trial_id = (SELECT trial_id FROM trials WHERE number = ?)",
            (best.number,),
        )
    assert (
        _in(
            tmp_path,
            [
                "reproduce",
                "rep",
                "--trial",
                str(best.number),
                "--storage",
                storage,
                "--no-progress",
            ],
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "NOT identical" in out and "differs" in out


@pytest.mark.parametrize(
    "entry,path,value",
    [
        (
            {"evolution.mutation_sigma": {"type": "float", "low": 0.1, "high": 0.01}},
            "search.evolution.mutation_sigma.low",
            "0.1",
        ),
        (
            {"lora.layers": {"type": "categorical", "choices": []}},
            "search.lora.layers.choices",
            "[]",
        ),
        (
            {"evolution.colour": {"type": "float", "low": 0, "high": 1}},
            "search.evolution.colour",
            "evolution.colour",
        ),
        (
            {"evolution.population": {"type": "int", "low": 1, "high": 8}},
            "search.evolution.population",
            "1",
        ),
        (
            {"evolution.population": {"type": "integer", "low": 2, "high": 8}},
            "search.evolution.population.type",
            "integer",
        ),
        (
            {"evolution.mutation_sigma": {"type": "float", "low": 0.0, "high": 0.1, "log": True}},
            "search.evolution.mutation_sigma",
            "0",
        ),
    ],
)
def test_bad_search_entries_exit_2_naming_the_path(tmp_path, capsys, entry, path, value):
    s = tiny_study(tmp_path)
    s["search"] = entry
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(s))
    assert _in(tmp_path, ["sweep", str(f), "--n-trials", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evolora: error: {path}") and value in err, err
    assert not (tmp_path / "mlruns").exists()


def test_a_set_on_a_searched_path_fixes_it(tmp_path):
    path = _study(tmp_path, name="fixed", evolution__generations=2)
    assert (
        _in(
            tmp_path,
            [
                "sweep",
                str(path),
                "--n-trials",
                "2",
                "--set",
                "evolution.population=3",
                "--no-progress",
            ],
        )
        == 0
    )
    study = _journal(tmp_path, "fixed")
    assert all("evolution.population" not in t.params for t in study.trials)
    assert all(t.user_attrs["evolora:config"]["evolution"]["population"] == 3 for t in study.trials)


def test_reporter_prunes_a_trial_below_the_median():
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    for v in (0.9, 0.8):
        t = study.ask()
        for step in (2, 4):
            t.report(v, step)
        study.tell(t, v)
    t = study.ask()
    rep = OptunaReporter(t, every=2)
    rep.on_generation({"gen": 1, "val_champion": 0.1})  # not a reporting generation
    with pytest.raises(TrialPruned, match="generation 2"):
        rep.on_generation({"gen": 2, "val_champion": 0.1})
    good = study.ask()
    # above the median: goes on
    OptunaReporter(good, every=2).on_generation({"gen": 2, "val_champion": 0.95})


def test_failing_trials_back_off_1_2_4_8_s_then_the_sweep_stops_naming_the_failure(
    tmp_path, monkeypatch, capsys
):
    """A failure that repeats (a server or disk gone for a while) must not spend the five tries at once: the
    worker waits 1, 2, 4, 8 s between them, measured between the storage's own trial timestamps."""
    import evolora.orchestrator.run.trial as trial_module

    def broken(*a, **k):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(trial_module, "Trial", broken)  # every trial fails as it is made
    path = _study(tmp_path)
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "8", "--no-progress"]) == 1
    assert (
        "5 trials in a row failed; last: RuntimeError: the disk went away"
        in capsys.readouterr().err
    )
    trials = sorted(_journal(tmp_path).trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 5
    waits = [
        (b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(trials, trials[1:])
    ]
    assert all(w >= want for w, want in zip(waits, (1, 2, 4, 8))), waits
    _, _, children = _mlflow(tmp_path)  # each failed try is visible as a FAILED child run
    assert sorted(r.info.status for r in children) == ["FAILED"] * 5


def test_baseline_trial_runs_the_files_values_and_study_seeds_compare_configs_on_the_same_draws(
    tmp_path,
):
    """sweep.baseline: trial 0 is the file's own values of the searched paths; sweep.seeds: study gives every
    trial the study's seed, so the baseline trial is exactly `evolora run` of the file."""
    s = tiny_study(tmp_path, evolution__generations=2)
    s.update(
        name="base", search=SEARCH, sweep={"pruner": "none", "baseline": True, "seeds": "study"}
    )
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(s))
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "3", "--no-progress"]) == 0
    study = _journal(tmp_path, "base")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    first = study.trials[0]
    assert first.user_attrs["evolora:baseline"] is True
    assert first.params == {
        "evolution.mutation_sigma": 0.05,
        "evolution.population": 4,
        "lora.layers": "[5]",
        "fitness.terms.0.weight": 1.0,
    }
    assert all(not t.user_attrs.get("evolora:baseline") for t in study.trials[1:])
    # the others are sampled
    assert len({t.params["evolution.mutation_sigma"] for t in study.trials}) == 3
    assert {t.user_attrs["evolora:seed"] for t in study.trials} == {3}
    assert _in(tmp_path, ["run", str(path), "--no-progress"]) == 0
    client, _, children = _mlflow(tmp_path)
    exp = client.get_experiment_by_name("tests")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    alone = [
        r
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.data.tags.get("evolora.role") != "sweep"
    ]
    assert len(alone) == 1
    assert alone[0].data.metrics["val_best"] == first.value
    # resuming does not enqueue the baseline again
    assert _in(tmp_path, ["sweep", str(path), "--n-trials", "4", "--no-progress"]) == 0
    study = _journal(tmp_path, "base")
    assert (
        len(study.trials) == 4
        and sum(bool(t.user_attrs.get("evolora:baseline")) for t in study.trials) == 1
    )


@pytest.mark.parametrize(
    "entry,value",
    [
        ({"evolution.mutation_sigma": {"type": "float", "low": 0.06, "high": 0.1}}, "0.05"),
        ({"lora.layers": {"type": "categorical", "choices": [[4], [4, 5]]}}, "[5]"),
        ({"evolution.population": {"type": "int", "low": 3, "high": 9, "step": 2}}, "4"),
    ],
)
def test_a_baseline_outside_its_search_entry_exits_2_naming_it(tmp_path, capsys, entry, value):
    s = tiny_study(tmp_path)
    s.update(search=entry, sweep={"baseline": True})
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(s))
    assert _in(tmp_path, ["sweep", str(f), "--n-trials", "2"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"evolora: error: search.{next(iter(entry))}")
        and "baseline" in err
        and value in err
    ), err
    assert not (tmp_path / "mlruns").exists()
