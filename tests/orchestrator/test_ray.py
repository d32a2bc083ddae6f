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

from evolution import Observer
from evolution.checkpoint import load_checkpoint_file

from ..conftest import STSB, THREADS, tiny_study

pytestmark = pytest.mark.slow

ES = {"evolution__strategy": "openai-es", "evolution__population": 7, "evolution__generations": 4,
      "evolution__es": {"sigma": 0.05, "learning_rate": 0.05}, "data__rotate": True, "data__train_subset": 16,
      "model__threads": THREADS}
GA = {"evolution__population": 5, "evolution__generations": 3, "model__threads": THREADS}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """One local Ray for the module; its workers see the tiny LFM2's cache and the offline hub."""
    import ray  # installed by the README's setup: a missing ray fails here, it never skips

    cache = tmp_path_factory.mktemp("cache")
    before = os.environ.get("EVOLORA_CACHE")
    os.environ["EVOLORA_CACHE"] = str(cache)
    ray.init(num_cpus=2 * THREADS, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "EVOLORA_CACHE": str(cache)}})
    yield ray
    ray.shutdown()
    if before is None:
        os.environ.pop("EVOLORA_CACHE", None)
    else:
        os.environ["EVOLORA_CACHE"] = before


def _trial(tmp_path, study: dict, name: str, actors: int, observers=(), **ray_over):
    """One untracked trial (checkpointed, so its loop state and lineage can be compared); its final state."""
    from orchestrator.runner import RunSettings, Trial
    from orchestrator.studyfile import parse_study

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
    rows = [[{k: v for k, v in r.items() if k not in clock and not k.startswith("ray_")} for r in s["logbook"]]
            for s in (a, b)]
    assert rows[0] == rows[1]


def _lineage(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["es", "ga"])
def test_two_actors_give_the_single_process_result_to_the_last_bit(tmp_path, ray_cluster, kind):
    study = tiny_study(tmp_path, **(ES if kind == "es" else GA))
    one, loop1, lin1, _ = _trial(tmp_path, study, "one", 0)
    two, loop2, lin2, _ = _trial(tmp_path, study, "two", 2)
    assert one.result.champion.tobytes() == two.result.champion.tobytes()
    assert one.result.champion_val == two.result.champion_val
    _same_loop(loop1, loop2)
    assert _lineage(lin1) == _lineage(lin2)  # every birth, its parents and draw, every evaluation
    rows = loop2["logbook"]
    assert all(r["ray_actors"] == 2 for r in rows)
    genome_bytes = 4 * one.result.champion.size
    if kind == "es":  # after generation 0 the ES sends fitness values and a generator state, not genomes
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


def test_an_actor_killed_mid_run_is_replaced_and_changes_nothing(tmp_path, ray_cluster):
    study = tiny_study(tmp_path, **{**ES, "evolution__generations": 5})
    one, loop1, lin1, _ = _trial(tmp_path, study, "one", 0)
    killer = KillOne(at=1)
    two, loop2, lin2, _ = _trial(tmp_path, study, "two", 2, observers=[killer])
    assert killer.killed
    assert loop2["logbook"][-1]["ray_replaced"] >= 1
    assert one.result.champion.tobytes() == two.result.champion.tobytes()
    _same_loop(loop1, loop2)
    evals = [e for e in _lineage(lin2) if e["event"] == "eval"]
    assert len(evals) == len({e["id"] for e in evals}) == 5 * 7  # every member scored once, none twice


def test_a_run_resumes_on_another_number_of_actors(tmp_path, ray_cluster):
    from orchestrator.runner import RunSettings, Trial
    from orchestrator.studyfile import parse_study

    class CtrlC(Observer):
        def on_generation(self, row):
            if row["gen"] == 2:  # before generation 2's checkpoint: the run resumes from generation 1's
                raise KeyboardInterrupt

    study = tiny_study(tmp_path, **ES)
    one, loop1, _, _ = _trial(tmp_path, study, "one", 0)
    ck = tmp_path / "resumed" / "trial.npz"
    first = Trial(parse_study({**study, "ray": {"actors": 2}}), RunSettings(track=False, progress=False, checkpoint=ck))
    with pytest.raises(KeyboardInterrupt):
        first.run(observers=[CtrlC()])
    assert load_checkpoint_file(ck)["loop"]["gen"] == 1
    again = Trial(parse_study({**study, "ray": {"actors": 1}}), RunSettings(track=False, progress=False, checkpoint=ck))
    out = again.run()
    assert out.result.champion.tobytes() == one.result.champion.tobytes()
    _same_loop(loop1, load_checkpoint_file(ck)["loop"])


def test_the_tiny_lfm2_es_on_two_actors_matches_one_process(tmp_path, ray_cluster):
    study = {
        "name": "lfm2-ray", "seed": 4, "model": {"base": "lfm2-tiny", "kind": "causal", "threads": THREADS},
        "lora": {"rank": 2, "alpha": 4, "blocks": {"attention": {"modules": ["q_proj", "v_proj"]},
                                                    "conv": {"enabled": False}, "feed_forward": {"enabled": False}}},
        "data": {"train_path": str(STSB / "sts-train.csv"), "dev_path": str(STSB / "sts-dev.csv"),
                 "train_genre": "main-news", "dev_genre": "main-news", "train_subset": 8, "dev_subset": 12,
                 "batch_size": 8, "max_length": 32},
        "fitness": {"terms": [{"name": "likelihood", "weight": 1.0}, {"name": "kl_to_base", "weight": 0.1}]},
        "validation": {"metric": "likelihood"},
        "evolution": {"strategy": "openai-es", "population": 5, "generations": 3,
                      "es": {"sigma": 0.05, "learning_rate": 0.05}},
        "mlflow": {"experiment": "tests"},
    }
    one, loop1, lin1, _ = _trial(tmp_path, study, "one", 0)
    two, loop2, lin2, _ = _trial(tmp_path, study, "two", 2)
    assert one.result.champion.tobytes() == two.result.champion.tobytes()
    _same_loop(loop1, loop2)
    assert _lineage(lin1) == _lineage(lin2)


@pytest.mark.parametrize("value", ["nowhere", "127.0.0.1:9"])
def test_a_bad_or_unreachable_cluster_address_exits_2_naming_the_field_and_writes_nothing(tmp_path, value):
    """In a process of its own (one Ray connection per process): `evolora run` with ray.address malformed or
    pointing where no cluster listens."""
    study = tiny_study(tmp_path, ray={"actors": 2, "address": value})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--no-progress",
                           "--tracking-uri", uri], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "ray.address" in proc.stderr and value in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
