"""A quiet terminal: `--quiet` prints only a command's answer (a run's id, a sweep's best trial) for a
script to read; third-party warnings and MLflow's INFO lines stay off the terminal (a run logs the warnings
as its warnings.txt) while evolora's own warnings show."""

import re
import subprocess
import sys

import yaml

from ..conftest import evolora_process, tiny_study


def test_run_and_sweep_quiet_print_only_their_answer_and_nothing_on_stderr(tmp_path):
    study = {
        **tiny_study(tmp_path, name="quiet"),
        "search": {"evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1}},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    run = evolora_process(tmp_path, "run", "s.yaml", "--quiet")
    assert run.returncode == 0 and run.stderr == "", run.stderr[-2000:]
    assert re.fullmatch(r"[0-9a-f]{32}\n", run.stdout), run.stdout
    sweep = evolora_process(tmp_path, "sweep", "s.yaml", "--n-trials", "1", "--quiet")
    assert sweep.returncode == 0 and sweep.stderr == "", sweep.stderr[-2000:]
    assert re.fullmatch(r"trial 0, value [0-9.]+, params \{.*\}\n", sweep.stdout), sweep.stdout
    loud = evolora_process(tmp_path, "run", "s.yaml", "--no-progress")
    assert "INFO mlflow" not in loud.stderr and "Warning" not in loud.stderr, loud.stderr[-2000:]
    assert "validation (stsb_spearman)" in loud.stdout


def test_library_warnings_are_kept_for_the_run_and_evoloras_own_are_shown():
    code = (
        "import warnings\n"
        "from evolora.orchestrator.run.progress import quiet_libraries, drain_warnings\n"
        "from evolora.evolution.errors import EvoloraWarning\n"
        "quiet_libraries(); quiet_libraries()\n"  # twice: one hook, not two
        "warnings.warn('a library is deprecating something', FutureWarning)\n"
        "warnings.warn('the base built here differs', EvoloraWarning)\n"
        "kept = drain_warnings()\n"
        "print(repr(kept))\n"
        "print(repr(drain_warnings()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kept, again = out.stdout.splitlines()
    assert "FutureWarning: a library is deprecating something" in kept and "differs" not in kept
    assert again == "''"  # drained once
    assert "EvoloraWarning: the base built here differs" in out.stderr
    assert "deprecating" not in out.stderr
