"""A new user's first hour, in an empty directory with the installed package: `evolora init` writes a study
that runs, a shipped study runs by name, a reward function is passed to `evolora.run` directly, and the
docs' Python example that runs a study runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import evolora
from evolora.evolution.errors import ConfigError, RegistryError
from evolora.fitness import FITNESS_TERMS

from .conftest import evolora_process

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "evolution.generations=2", "--set", "evolution.population=4"]
TINY += ["--set", "data.train_subset=16", "--set", "data.dev_subset=24", "--quiet"]


def test_init_writes_studies_that_run_from_an_empty_directory(tmp_path):
    out = evolora_process(tmp_path, "init")
    assert out.returncode == 0 and "evolora run study.yaml" in out.stdout, out.stderr
    text = (tmp_path / "study.yaml").read_text()
    assert (
        text.startswith("# Written by `evolora init --from quickstart`")
        and "\nname: study\n" in text
    )
    assert "../fitness" not in text  # the shipped file's relative data paths, made absolute
    again = evolora_process(tmp_path, "init")
    assert again.returncode == 2 and "--force" in again.stderr  # nothing overwritten
    pairs = evolora_process(tmp_path, "init", "--from", "pairs", "--out", "mine/s.yaml")
    assert pairs.returncode == 0, pairs.stderr
    assert (tmp_path / "mine" / "pairs.csv").read_text().startswith("sentence1,sentence2,score\n")
    run = evolora_process(tmp_path, "run", "mine/s.yaml", *TINY)
    assert run.returncode == 0 and re.fullmatch(r"[0-9a-f]{32}\n", run.stdout), run.stderr[-2000:]
    reward = evolora_process(tmp_path, "init", "--from", "reward", "--out", "r.yaml")
    assert reward.returncode == 0 and "name: r\n" in (tmp_path / "r.yaml").read_text()
    bad = evolora_process(tmp_path, "init", "--from", "nope")
    assert bad.returncode == 2 and "--from" in bad.stderr and "quickstart" in bad.stderr


def test_a_shipped_study_runs_by_name_from_any_directory(tmp_path):
    run = evolora_process(tmp_path, "run", "quickstart", *TINY)
    assert run.returncode == 0 and re.fullmatch(r"[0-9a-f]{32}\n", run.stdout), run.stderr[-2000:]
    missing = evolora_process(tmp_path, "run", "no-such-study")
    assert (
        missing.returncode == 2 and "lfm2-reward" in missing.stderr
    )  # the shipped ones are listed


def reward_len(completions, **kwargs):
    return [-abs(20 - len(c)) for c in completions]


def test_rewards_passed_to_the_api_replace_the_studys_reward(tmp_path):
    try:
        cfg = evolora.study("lfm2-reward", rewards=[reward_len])
        # the reward replaced; the study's KL term kept where its search names it; validation and the
        # Pareto objective that was the reward follow
        assert [t.name for t in cfg.fitness.terms] == ["reward_len", "kl_to_base"]
        assert cfg.validation.metric == "reward_len" and cfg.validation.params == {}
        assert [o.metric for o in cfg.sweep.objectives] == ["reward_len", "likelihood"]
        assert (
            evolora.study("lfm2-reward", rewards=reward_len).fitness.terms[0].name == "reward_len"
        )

        def other(completions, **kwargs):
            return [0.0 for _ in completions]

        other.__name__ = "reward_len"
        with pytest.raises(RegistryError, match="already registered"):
            evolora.study("lfm2-reward", rewards=[other])
        with pytest.raises(ConfigError, match="rewards"):
            evolora.study("lfm2-reward", rewards=[lambda completions, **kw: completions])
        with pytest.raises(ConfigError, match="rewards"):
            evolora.sweep("lfm2-reward", 2, rewards=[reward_len], workers=2)
    finally:
        FITNESS_TERMS.unregister("reward_len")


def _docs_blocks_that_run_a_study() -> list[str]:
    blocks = []
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for b in re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            if "evolora.run(" in b and b not in blocks:
                blocks.append(b)
    return blocks


def test_the_docs_examples_that_run_a_study_are_the_ones_tested():
    assert len(_docs_blocks_that_run_a_study()) == 1  # README and the API page show the same code


@pytest.mark.slow
@pytest.mark.parametrize("block", _docs_blocks_that_run_a_study())
def test_the_docs_python_example_runs_as_written_in_an_empty_directory(tmp_path, block):
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "EVOLORA_STORAGE")
    }
    out = subprocess.run(
        [sys.executable, "-c", block],
        cwd=tmp_path,
        env={**env, "HF_HUB_OFFLINE": "1", "EVOLORA_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "models:/" in out.stdout and (tmp_path / "mlruns" / "mlflow.db").is_file()
