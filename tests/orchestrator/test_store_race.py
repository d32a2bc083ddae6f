"""Two runs started at once on a fresh SQLite tracking store: both finish (MLflow creates its tables when a
process first opens the store; evolora opens it under a lock, so the second never races the first)."""

import os
import subprocess
import sys

import yaml
from mlflow.tracking import MlflowClient

from ..conftest import tiny_study


def test_two_runs_at_once_on_a_fresh_sqlite_store_both_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = []
    for seed in (1, 2):
        path = tmp_path / f"s{seed}.yaml"
        path.write_text(yaml.safe_dump(tiny_study(tmp_path, seed=seed, evolution__generations=2)))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "evolora",
                    "run",
                    str(path),
                    "--no-progress",
                    "--tracking-uri",
                    uri,
                ],
                env=env,
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(e[-3000:] for e in errs)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
