"""A property-style suite of hostile input, from a seeded generator: study files with one value replaced by
something hostile, unknown keys, and malformed data rows. For every case: exit 2 with one line naming the
field or file, or a valid study — never a traceback; and the valid ones, run for real (a sample), finish
cleanly, leave no run RUNNING and write nothing outside the store."""

import csv
import io
import math
import random

import pytest
import yaml
from mlflow.tracking import MlflowClient

from evolora.evolution.errors import ConfigError
from evolora.fitness import load_pairs
from evolora.orchestrator.cli.commands import main
from evolora.orchestrator.study.load import parse_study
from evolora.orchestrator.study.paths import leaf_paths

from ..conftest import tiny_study

HOSTILE = [
    None,
    "",
    " ",
    -1,
    0,
    1,
    -1e308,
    1e308,
    float("nan"),
    float("inf"),
    -float("inf"),
    2**70,
    -(2**70),
    "x" * 5000,
    "../..",
    "/etc/passwd",
    "\x00",
    "😀",
    True,
    False,
    [],
    {},
    [1, 2],
    {"a": 1},
    [[[]]],
    "1e999",
    ".nan",
    "-0",
    3.5,
    "auto",
    "cuda",
    "sqlite:///x",
]
N_CASES = 400


def _cases():
    rng = random.Random(20261203)
    base = tiny_study(None)
    leaves = sorted(leaf_paths(base))
    for i in range(N_CASES):
        kind = rng.random()
        if kind < 0.8:
            path, value = rng.choice(leaves), rng.choice(HOSTILE)
            yield (
                f"{i}:{path}={str(value)[:20]!r}",
                [f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}"],
            )
        elif kind < 0.9:
            path = (
                rng.choice(leaves).rsplit(".", 1)[0]
                + "."
                + rng.choice(["nope", "Population", "seed_", "x"])
            )
            yield f"{i}:{path}", [f"{path}=1"]
        else:
            path = rng.choice(
                ["fitness.terms.0.params", "search", "sweep", "validation.budget", "data.columns"]
            )
            yield (
                f"{i}:{path}",
                [f"{path}={yaml.safe_dump(rng.choice(HOSTILE), default_flow_style=True).strip()}"],
            )


CASES = list(_cases())


def _path_named(err: ConfigError, overrides: list[str]) -> bool:
    """The error names a config path at or near the one the case changed (or a field its value reached)."""
    changed = overrides[0].split("=", 1)[0]
    top = changed.split(".")[0]
    return err.path.split(".")[0] in (
        top,
        "search",
        "validation",
        "data",
        "lora",
        "fitness",
        "evolution",
        "model",
        "mlflow",
        "sweep",
        "<study>",
        "name",
        "seed",
        "--set",
    )


def test_every_generated_study_is_an_error_naming_its_field_or_a_valid_study(tmp_path):
    valid = []
    for case_id, overrides in CASES:
        try:
            cfg = parse_study(tiny_study(tmp_path), tmp_path, overrides)
        except ConfigError as e:
            msg = str(e)
            assert "\n" not in msg and len(msg) < 2000 and _path_named(e, overrides), (case_id, msg)
            continue
        except Exception as e:  # a traceback in the CLI: exactly what must never happen
            pytest.fail(f"{case_id}: {type(e).__name__}: {e}")
        for v in _floats(cfg.model_dump()):
            assert math.isfinite(v), (case_id, v)
        valid.append((case_id, overrides))
    assert 0 < len(valid) < len(CASES) / 2  # the generator makes both kinds, mostly errors


def _floats(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _floats(v)
    elif isinstance(d, list):
        for v in d:
            yield from _floats(v)
    elif isinstance(d, float):
        yield d


@pytest.mark.slow
def test_a_sample_of_the_valid_generated_studies_runs_cleanly_and_writes_only_the_store(
    tmp_path, capsys
):
    rng = random.Random(7)
    valid = []
    for case_id, overrides in CASES:
        try:
            parse_study(tiny_study(tmp_path), tmp_path, overrides)
            valid.append((case_id, overrides))
        except ConfigError:
            pass
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(tiny_study(tmp_path, evolution__generations=2)))
    before = {p for p in tmp_path.rglob("*")}
    codes = []
    for case_id, overrides in rng.sample(valid, 6):
        code = main(
            [
                "run",
                str(study),
                "--no-progress",
                "--set",
                overrides[0],
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
            ]
        )
        err = capsys.readouterr().err.strip().splitlines()
        # clean, or bad input found when the data or model loaded
        assert code in (0, 2), (
            case_id,
            err[-5:],
        )
        if code == 2:
            assert len(err) == 1 and err[0].startswith("evolora: error: "), (case_id, err)
        codes.append(code)
    assert 0 in codes
    written = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(tmp_path / "mlruns") for p in written), sorted(map(str, written))[
        :5
    ]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and all(r.info.status != "RUNNING" for r in runs)


def _row_cases():
    rng = random.Random(11)
    cells = [
        "",
        "x",
        "1.5",
        "nan",
        "inf",
        "-3",
        "1e400",
        "\x00",
        '"',
        '""',
        "a,b",
        "😀",
        " ",
        "5" * 400,
    ]
    for i in range(200):
        n_fields = rng.choice([1, 2, 3, 3, 3, 4])
        yield i, [rng.choice(cells) for _ in range(n_fields)]


def test_every_generated_data_row_is_loaded_or_an_error_naming_the_file_and_row(tmp_path):
    loaded = errors = 0
    for i, row in _row_cases():
        buf = io.StringIO()
        csv.writer(buf).writerows(
            [["sentence1", "sentence2", "score"], ["A cat.", "A dog.", "3"], row]
        )
        p = tmp_path / f"d{i}.csv"
        p.write_text(buf.getvalue(), encoding="utf-8")
        try:
            pairs = load_pairs(p, "data.train_path")
        except ConfigError as e:
            assert (
                str(e).startswith("data.train_path: ")
                and f"d{i}.csv" in str(e)
                and "\n" not in str(e)
            ), (i, row, e)
            errors += 1
            continue
        except Exception as e:
            pytest.fail(f"row {row!r}: {type(e).__name__}: {e}")
        assert len(pairs) == 2 and all(math.isfinite(g) for g in pairs.gold)
        loaded += 1
    assert loaded and errors
