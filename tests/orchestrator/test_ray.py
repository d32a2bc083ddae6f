"""Population evaluation on real Ray actors (a local cluster, 2 actors): the same result as one process to
the last bit (ES and GA, MiniLM and the tiny LFM2), an actor killed mid-run changes nothing, a run resumes
on another number of actors, and bad input fails with exit 2 naming the field."""

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml

from evolora.evolution import Observer
from evolora.evolution.checkpoint import load_checkpoint_file

from ..conftest import STSB, THREADS, tiny_study, trial_checkpoint

pytestmark = pytest.mark.slow

ES = {
    "evolution__strategy": "openai-es",
    "evolution__population": 7,
    "evolution__generations": 4,
    "evolution__es": {"sigma": 0.05, "learning_rate": 0.05},
    "data__rotate": True,
    "data__train_subset": 16,
    "model__threads": THREADS,
}
GA = {"evolution__population": 5, "evolution__generations": 3, "model__threads": THREADS}


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory):
    """The environment every trial's Ray driver (and so its actors) inherits: the tiny LFM2's cache, the offline
    hub (conftest), and a GCS reconnect window of 10 s instead of 60 (how long a driver waits for a cluster that
    went away before Ray ends it)."""
    import ray  # noqa: F401 - installed by the README's setup: a missing ray fails here, it never skips

    cache = tmp_path_factory.mktemp("cache")
    over = {"EVOLORA_CACHE": str(cache), "RAY_gcs_rpc_server_reconnect_timeout_s": "10"}
    before = {k: os.environ.get(k) for k in over}
    os.environ.update(over)
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def cluster(ray_env):
    """A Ray head on this machine (`ray start --head`) that the module's trials share by address."""
    from evolora.orchestrator.distributed.cluster import LocalCluster

    with LocalCluster(2 * THREADS) as c:
        yield c.address


def _trial(tmp_path, study: dict, name: str, actors: int, observers=(), **ray_over):
    """One untracked trial (checkpointed, so its loop state and lineage can be compared); its final state."""
    from evolora.orchestrator.run.trial import RunSettings, Trial
    from evolora.orchestrator.study.load import parse_study

    study = {**study, "ray": {"actors": actors, **ray_over}} if actors else study
    ck = tmp_path / name / "trial.npz"
    trial = Trial(parse_study(study), RunSettings(track=False, progress=False, checkpoint=ck))
    holder = {"trial": trial}
    for o in observers:
        o.trial = trial
    out = trial.run(observers=list(observers))
    return out, load_checkpoint_file(ck)["loop"], ck.with_suffix(".lineage.jsonl"), holder


def _same_loop(a: dict, b: dict) -> None:
    """Two final loop states equal to the last bit, but for the wall-clock figures of the logbook."""
    for key in ("gen", "next_id", "random", "champion", "base_val"):
        assert json.dumps(a[key], default=str) == json.dumps(b[key], default=str), key
    for pa, pb in zip(a["population"] + a["hof"], b["population"] + b["hof"], strict=True):
        assert pa["genes"].tobytes() == pb["genes"].tobytes() and pa["fitness"] == pb["fitness"]
        assert pa["terms"] == pb["terms"]
    for sa, sb in ((a["strategy"], b["strategy"]),):
        for k in sa:
            va, vb = sa[k], sb[k]
            assert (va.tobytes() == vb.tobytes()) if isinstance(va, np.ndarray) else va == vb, k
    clock = ("evals_per_s", "gen_s", "overhead_share")
    rows = [
        [
            {k: v for k, v in r.items() if k not in clock and not k.startswith("ray_")}
            for r in s["logbook"]
        ]
        for s in (a, b)
    ]
    assert rows[0] == rows[1]


def _lineage(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["es", "ga"])
def test_two_actors_give_the_single_process_result_to_the_last_bit(
    tmp_path, ray_env, cluster, kind
):
    """The ES on a local Ray the trial starts itself (ray.address null), the GA on a cluster by address."""
    study = tiny_study(tmp_path, **(ES if kind == "es" else GA))
    one, loop1, lin1, _ = _trial(tmp_path, study, "one", 0)
    two, loop2, lin2, _ = _trial(
        tmp_path, study, "two", 2, **({} if kind == "es" else {"address": cluster})
    )
    assert one.result.champion.tobytes() == two.result.champion.tobytes()
    assert one.result.champion_val == two.result.champion_val
    _same_loop(loop1, loop2)
    assert _lineage(lin1) == _lineage(lin2)  # every birth, its parents and draw, every evaluation
    rows = loop2["logbook"]
    assert all(r["ray_actors"] == 2 for r in rows)
    genome_bytes = 4 * one.result.champion.size
    # after generation 0 the ES sends fitness values and a generator state, not genomes
    if kind == "es":
        assert all(r["ray_bytes_per_genome"] < genome_bytes / 20 for r in rows[1:])
    else:  # the GA's genomes travel
        assert all(r["ray_bytes_per_genome"] > genome_bytes for r in rows)


class KillOne(Observer):
    """SIGKILLs actor 0's process a moment after generation ``at`` ended, while the next one is scored."""

    def __init__(self, at: int) -> None:
        self.at, self.trial, self.killed = at, None, []

    def on_generation(self, row):
        if row["gen"] == self.at:
            pid = self.trial.pool.pids()[0]

            def kill():
                threading.Event().wait(0.05)
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)

            threading.Thread(target=kill, daemon=True).start()


def test_an_actor_killed_mid_run_is_replaced_and_changes_nothing(tmp_path, cluster):
    study = tiny_study(tmp_path, **{**ES, "evolution__generations": 5})
    one, loop1, lin1, _ = _trial(tmp_path, study, "one", 0)
    killer = KillOne(at=1)
    two, loop2, lin2, _ = _trial(tmp_path, study, "two", 2, observers=[killer], address=cluster)
    assert killer.killed
    assert loop2["logbook"][-1]["ray_replaced"] >= 1
    assert one.result.champion.tobytes() == two.result.champion.tobytes()
    _same_loop(loop1, loop2)
    evals = [e for e in _lineage(lin2) if e["event"] == "eval"]
    # every member scored once, none twice
    assert len(evals) == len({e["id"] for e in evals}) == 5 * 7


def test_a_run_resumes_on_another_number_of_actors(tmp_path, cluster):
    from evolora.orchestrator.run.trial import RunSettings, Trial
    from evolora.orchestrator.study.load import parse_study

    class CtrlC(Observer):
        def on_generation(self, row):
            # before generation 2's checkpoint: the run resumes from generation 1's
            if row["gen"] == 2:
                raise KeyboardInterrupt

    study = tiny_study(tmp_path, **ES)
    one, loop1, _, _ = _trial(tmp_path, study, "one", 0)
    ck = tmp_path / "resumed" / "trial.npz"
    first = Trial(
        parse_study({**study, "ray": {"actors": 2, "address": cluster}}),
        RunSettings(track=False, progress=False, checkpoint=ck),
    )
    with pytest.raises(KeyboardInterrupt):
        first.run(observers=[CtrlC()])
    assert load_checkpoint_file(ck)["loop"]["gen"] == 1
    again = Trial(
        parse_study({**study, "ray": {"actors": 1, "address": cluster}}),
        RunSettings(track=False, progress=False, checkpoint=ck),
    )
    out = again.run()
    assert out.result.champion.tobytes() == one.result.champion.tobytes()
    _same_loop(loop1, load_checkpoint_file(ck)["loop"])


def test_the_tiny_lfm2_es_on_two_actors_matches_one_process(tmp_path, ray_env):
    study = {
        "name": "lfm2-ray",
        "seed": 4,
        "model": {"base": "lfm2-tiny", "kind": "causal", "threads": THREADS},
        "lora": {
            "rank": 2,
            "alpha": 4,
            "blocks": {
                "attention": {"modules": ["q_proj", "v_proj"]},
                "conv": {"enabled": False},
                "feed_forward": {"enabled": False},
            },
        },
        "data": {
            "train_path": str(STSB / "sts-train.csv"),
            "dev_path": str(STSB / "sts-dev.csv"),
            "train_genre": "main-news",
            "dev_genre": "main-news",
            "train_subset": 8,
            "dev_subset": 12,
            "batch_size": 8,
            "max_length": 32,
        },
        "fitness": {
            "terms": [{"name": "likelihood", "weight": 1.0}, {"name": "kl_to_base", "weight": 0.1}]
        },
        "validation": {"metric": "likelihood"},
        "evolution": {
            "strategy": "openai-es",
            "population": 5,
            "generations": 3,
            "es": {"sigma": 0.05, "learning_rate": 0.05},
        },
        "mlflow": {"experiment": "tests"},
    }
    one, loop1, lin1, _ = _trial(tmp_path, study, "one", 0)
    two, loop2, lin2, _ = _trial(tmp_path, study, "two", 2)
    assert one.result.champion.tobytes() == two.result.champion.tobytes()
    _same_loop(loop1, loop2)
    assert _lineage(lin1) == _lineage(lin2)


@pytest.mark.parametrize("value", ["nowhere", "127.0.0.1:9"])
def test_a_bad_or_unreachable_cluster_address_exits_2_naming_the_field_and_writes_nothing(
    tmp_path, value
):
    """In a process of its own (one Ray connection per process): `evolora run` with ray.address malformed or
    pointing where no cluster listens."""
    study = tiny_study(tmp_path, ray={"actors": 2, "address": value})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "evolora", "run", str(path), "--no-progress", "--tracking-uri", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "ray.address" in proc.stderr and value in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_sweep_of_ray_trials_logs_each_generations_actors_and_bytes(tmp_path, cluster):
    """Two trials of a sweep, each its own actors on a shared cluster: both complete, and every generation's
    wall time, actors and bytes sent are in its MLflow run's metrics."""
    import optuna
    from mlflow.tracking import MlflowClient

    import evolora

    study = tiny_study(
        tmp_path,
        **ES,
        name="ray-sweep",
        ray={"actors": 2, "address": cluster},
        search={"evolution.es.sigma": {"type": "float", "low": 0.03, "high": 0.06}},
        sweep={"pruner": "none", "sampler": "random"},
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    evolora.sweep(
        path,
        n_trials=2,
        progress=False,
        storage=str(tmp_path / "journal.log"),
        tracking_uri=uri,
        checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    trials = optuna.load_study(
        study_name="ray-sweep",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
        ),
    ).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    client = MlflowClient(uri)
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("tests").experiment_id])
        if r.data.tags.get("mlflow.parentRunId")
    ]
    assert len(runs) == 2
    genome_bytes = None
    for r in runs:
        assert r.data.tags["evolora.ray_actors"] == "2"
        for key in ("ray_actors", "ray_bytes_per_genome", "ray_bytes_sent", "gen_s"):
            hist = client.get_metric_history(r.info.run_id, key)
            assert len(hist) == ES["evolution__generations"], key  # one per generation
        assert {m.value for m in client.get_metric_history(r.info.run_id, "ray_actors")} == {2.0}
        per_genome = [
            m.value
            for m in sorted(
                client.get_metric_history(r.info.run_id, "ray_bytes_per_genome"),
                key=lambda m: m.step,
            )
        ]
        genome_bytes = 4 * int(r.data.tags["evolora.genome_size"])
        assert per_genome[0] > max(per_genome[1:]) and max(per_genome[1:]) < genome_bytes / 20


def test_a_cluster_that_goes_away_fails_the_trial_and_the_sweep_goes_on(
    tmp_path, ray_env, monkeypatch
):
    """`ray.address: auto` (RAY_ADDRESS names the cluster): the first trial's cluster is killed while it runs —
    that trial fails saying the cluster went away, the sweep's process lives on, and the next trials run on the
    cluster RAY_ADDRESS names by then."""
    import optuna

    import evolora
    from evolora.orchestrator.distributed.cluster import LocalCluster
    from evolora.orchestrator.sweep.storage import ATTR

    first, second = LocalCluster(2 * THREADS), LocalCluster(2 * THREADS)
    monkeypatch.setenv("RAY_ADDRESS", first.address)

    def kill_when_trial_0_runs():
        while not trial_checkpoint(tmp_path / "checkpoints", "ray-gone", 0).exists():
            threading.Event().wait(0.1)
        os.environ["RAY_ADDRESS"] = second.address  # read by the next trial's driver when it starts
        first.stop()

    killer = threading.Thread(target=kill_when_trial_0_runs, daemon=True)
    killer.start()
    study = tiny_study(
        tmp_path,
        **{**ES, "evolution__generations": 12},
        name="ray-gone",
        ray={"actors": 2, "address": "auto"},
        search={"evolution.es.sigma": {"type": "float", "low": 0.03, "high": 0.06}},
        sweep={"pruner": "none", "sampler": "random"},
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    try:
        evolora.sweep(
            path,
            n_trials=2,
            progress=False,
            storage=str(tmp_path / "journal.log"),
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            checkpoint_dir=str(tmp_path / "checkpoints"),
        )
    finally:
        killer.join(timeout=5)
        first.stop()
        second.stop()
    trials = optuna.load_study(
        study_name="ray-gone",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
        ),
    ).get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL
    failure = trials[0].user_attrs[ATTR + "failure"]
    assert failure.startswith("ClusterLost: ") and "Ray cluster went away" in failure
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2


def test_a_scoring_that_raises_in_an_actor_fails_with_its_error(ray_env, tmp_path, cluster):
    """A message the actor cannot read: the trial's error says what the actor raised."""
    from evolora.orchestrator.distributed.driver import RayDriver
    from evolora.orchestrator.errors import ActorFailed
    from evolora.orchestrator.study.load import parse_study
    from evolora.orchestrator.study.sections import resolved

    driver = RayDriver(
        resolved(parse_study(tiny_study(tmp_path, **ES))), 1, THREADS, cluster, 0.0, 1.0, 300.0
    )
    try:
        assert len(driver.pids) == 1 and driver.actor_pids() == driver.pids
        driver.score(0, b"not a packed message")
        with pytest.raises(ActorFailed, match="CheckpointError: not a packed state"):
            driver.wait()
    finally:
        driver.close()
    assert driver.proc.returncode == 0


def test_a_term_registered_in_this_process_cannot_reach_actors(tmp_path, monkeypatch, capsys):
    """Actors load fitness terms from installed packages (entry points); one registered by a script is refused
    before anything is written, naming ray.actors and the term."""
    import evolora
    from evolora.fitness import FITNESS_TERMS

    from ..conftest import run_cli_in

    evolora.register_pair_metric(
        "script_only", lambda cosines, score, **kw: float(np.mean(cosines))
    )
    try:
        study = tiny_study(
            tmp_path, fitness={"terms": [{"name": "script_only"}]}, ray={"actors": 2}
        )
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(study))
        assert run_cli_in(tmp_path, ["run", str(path), "--no-progress"]) == 2
    finally:
        FITNESS_TERMS.unregister("script_only")
    err = capsys.readouterr().err
    assert "ray.actors" in err and "script_only" in err and "entry point" in err
    assert not (tmp_path / "mlruns").exists()


def test_a_missing_ray_package_exits_2_naming_the_field(tmp_path, monkeypatch, capsys):
    import importlib.util

    from ..conftest import run_cli_in

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tmp_path, ray={"actors": 2})))
    assert run_cli_in(tmp_path, ["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "ray.actors" in err and "needs the ray package" in err
    assert not (tmp_path / "mlruns").exists()
