"""`evolora bench --quality`: its JSON contract, every row present, and every row's adapter loads with stock
peft and scores what the row reports (tiny budget: this checks the contract, it measures nothing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evolora.benchmarks.quality import ROWS, THRESHOLDS
from evolora.orchestrator.cli.commands import main

from .conftest import THREADS

HELPER = Path(__file__).resolve().parent / "helpers" / "score_adapter.py"
KEYS = {
    "row",
    "test_base",
    "test_final",
    "test_gain_points",
    "seconds_to",
    "seconds",
    "budget_s",
    "curve",
    "threads",
    "adapter",
    "share_of_gradient",
    "test_by_source",
}


@pytest.mark.slow
def test_quality_table_contract_and_adapters_load_with_stock_peft(tmp_path, minilm_dir):
    out = tmp_path / "q"
    js = tmp_path / "quality.json"
    # a user's own test set beside sts-dev: 30 pairs of another file
    second = tmp_path / "more-pairs.jsonl"
    from evolora.fitness import PACKAGED_STSB, load_sts

    pairs = load_sts(PACKAGED_STSB / "sts-train.csv", "t")
    second.write_text(
        "".join(
            json.dumps(
                {"sentence1": pairs.s1[i], "sentence2": pairs.s2[i], "score": float(pairs.gold[i])}
            )
            + "\n"
            for i in range(0, 300, 10)
        )
    )
    assert (
        main(
            [
                "bench",
                "--quality",
                "--tiny",
                "--minutes",
                "0.04",
                "--threads",
                str(THREADS),
                "--out",
                str(out),
                "--json",
                str(js),
                "--test",
                str(second),
            ]
        )
        == 0
    )
    rows = json.loads(js.read_text())
    assert [r["row"] for r in rows] == list(ROWS)
    assert (out / "quality.png").stat().st_size > 10_000
    base = rows[0]["test_base"]
    grad = rows[0]["test_gain_points"]
    np.save(tmp_path / "idx.npy", np.arange(40))
    for r in rows:
        assert KEYS <= set(r), r["row"]
        assert r["threads"] == THREADS, r["row"]
        assert set(r["seconds_to"]) == {f"+{t}" for t in THRESHOLDS}
        assert r["test_base"] == base  # one base model, one test split for every row
        assert r["curve"][0][1] == base and r["curve"][-1][1] == r["test_final"]
        assert all(a[0] <= b[0] for a, b in zip(r["curve"], r["curve"][1:]))  # time goes forward
        assert abs(r["test_gain_points"] - 100 * (r["test_final"] - base)) < 1e-9
        if grad > 0:
            assert abs(r["share_of_gradient"] - r["test_gain_points"] / grad) < 1e-3
        # the row's answer, as a stock PEFT adapter, in a fresh process without evolora
        proc = subprocess.run(
            [
                sys.executable,
                str(HELPER),
                str(minilm_dir),
                r["adapter"],
                str(out / "sts-dev-tiny.csv"),
                str(tmp_path / "idx.npy"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert abs(float(proc.stdout.strip().splitlines()[-1]) - r["test_final"]) < 1e-5, r["row"]
        # the tiny test split is one source (its first 40 pairs): that source's gain is the row's gain
        assert (
            list(r["test_by_source"]) == ["MSRvid"] and r["test_by_source"]["MSRvid"]["pairs"] == 40
        )
        assert abs(r["test_by_source"]["MSRvid"]["gain_points"] - r["test_gain_points"]) < 1e-3, r[
            "row"
        ]
        assert (
            list(r["test_sets"]) == ["more-pairs.jsonl"]
            and r["test_sets"]["more-pairs.jsonl"]["pairs"] == 30
        )
        assert (
            r["test_sets"]["more-pairs.jsonl"]["base"]
            == rows[0]["test_sets"]["more-pairs.jsonl"]["base"]
        )
        assert (
            set(r["time_to"]) == {"+0.5", "+1.0"}
            and r["time_to"]["+0.5"]["seconds"] == r["seconds_to"]["+0.5"]
        )
    assert rows[0]["steps"] > 0 and all(r["evaluations"] > 0 for r in rows[1:])
    peers = {r["row"]: r["peer"] for r in rows if "peer" in r}
    assert set(peers) == {"evotorch-pgpe", "evotorch-snes", "nevergrad-ngopt"}
    assert (
        peers["evotorch-pgpe"]["algorithm"] == "PGPE"
        and peers["evotorch-snes"]["algorithm"] == "SNES"
    )
    assert (
        peers["evotorch-pgpe"]["version"] == "0.6.1"
        and peers["nevergrad-ngopt"]["version"] == "1.0.12"
    )


def _manual_clock(budget_s: float):
    """A row's clock the test moves by hand (``clock.now``)."""
    from evolora.benchmarks.curves import Clock

    class Manual(Clock):
        def __init__(self, budget_s):
            super().__init__(budget_s)
            self.now = 0.0

        def elapsed(self):
            return self.now

    return Manual(budget_s)


def test_curve_samples_densely_early_then_evenly():
    """A 33-minute budget: samples at 0, 15, 30, 60, 120, 240, 480 s (doubling while a gap is shorter than
    budget / SAMPLES = 330 s), then every 330 s, then the end; the test split is scored once per answer."""
    from evolora.benchmarks.curves import SAMPLES, Curve

    clock = _manual_clock(1980.0)
    scored = []
    curve = Curve(clock, lambda answer: scored.append(answer) or answer)
    for second in range(0, 1981):
        clock.now = float(second)
        curve.maybe(second // 100, lambda second=second: float(second // 100))
    curve.maybe(19, lambda: 19.0, force=True)
    times = [t for t, _ in curve.points]
    assert times[:7] == [0.0, 15.0, 30.0, 60.0, 120.0, 240.0, 480.0] and times[-1] == 1980.0
    gaps = [b - a for a, b in zip(times[6:], times[7:])]
    assert gaps[:-1] == [1980.0 / SAMPLES] * (len(gaps) - 1) and 0 < gaps[-1] <= 1980.0 / SAMPLES
    assert [v for _, v in curve.points] == [t // 100 for t in times]
    assert len(scored) == len({t // 100 for t in times})  # an unchanged answer is not scored again


def test_quality_bad_arguments_exit_2(tmp_path):
    assert main(["bench", "--quality", "--rows", "gradient,magic"]) == 2
    assert main(["bench", "--quality", "--minutes", "0"]) == 2
    assert main(["bench", "--quality", "--best-study", str(tmp_path / "none.yaml")]) == 2


def test_the_table_shows_each_rows_gain_by_source_when_the_test_split_has_several():
    from evolora.benchmarks.quality_report import format_quality

    def row(name, gain, by):
        return {
            "row": name,
            "test_base": 0.8,
            "test_final": 0.8 + gain / 100,
            "test_gain_points": gain,
            "share_of_gradient": None,
            "seconds_to": {f"+{t}": None for t in THRESHOLDS},
            "steps": 1,
            "budget_s": 60.0,
            "threads": 2,
            "test_by_source": by,
        }

    text = format_quality(
        [
            row(
                "gradient",
                2.4,
                {
                    "MSRpar": {"pairs": 250, "gain_points": 11.68},
                    "answers-forums": {"pairs": 375, "gain_points": 1.17},
                },
            ),
            row(
                "best",
                1.35,
                {
                    "MSRpar": {"pairs": 250, "gain_points": 5.52},
                    "answers-forums": {"pairs": 375, "gain_points": -0.22},
                },
            ),
        ]
    )
    lines = text.splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.startswith("gain pts by source"))
    assert lines[i].split()[-2:] == ["MSRpar", "answers-forums"]
    assert lines[i + 1].split()[-2:] == ["250", "375"]
    assert lines[i + 3].split() == ["gradient", "+11.68", "+1.17"] and lines[i + 4].split() == [
        "best",
        "+5.52",
        "-0.22",
    ]
    # one source only (the tiny split): no by-source table
    assert "by source" not in format_quality(
        [row("best", 1.0, {"MSRvid": {"pairs": 40, "gain_points": 1.0}})]
    )


def test_time_to_quality_ratios_against_the_slowest_peer_and_the_gradient():
    """best reaches +0.5 in 60 s; the slowest peer in 300 s (5× sooner), the gradient in 30 s (2× its time);
    at +1.0 no peer reaches it within its 600 s budget: best's 120 s is at least 5× sooner."""
    from evolora.benchmarks.quality_report import format_quality, time_ratios

    def row(name, t05, t10):
        return {
            "row": name,
            "seconds_to": {"+0.5": t05, "+1.0": t10, "+2.0": None},
            "budget_s": 600.0,
            "test_base": 0.8,
            "test_final": 0.81,
            "test_gain_points": 1.0,
            "threads": 1,
            "evaluations": 1,
        }

    rows = [
        row("gradient", 30.0, 60.0),
        row("best", 60.0, 120.0),
        row("evotorch-pgpe", 300.0, None),
        row("evotorch-snes", 100.0, None),
        row("nevergrad-ngopt", None, None),
    ]
    r = time_ratios(rows)
    assert r["+0.5"]["best"] == {
        "seconds": 60.0,
        "vs_slowest_peer": 10.0,
        "slowest_peer": "nevergrad-ngopt",
        "at_least": True,
        "x_best_peer_time": 0.6,  # SNES, the fastest peer to +0.5, took 100 s
        "best_peer": "evotorch-snes",
        "x_gradient_time": 2.0,
    }
    assert (
        "x_best_peer_time" not in r["+1.0"]["best"]
    )  # no peer reached +1.0: no time to compare with
    assert (
        "x_best_peer_time" not in r["+0.5"]["evotorch-pgpe"]
    )  # a peer is not compared with the peers
    assert (
        r["+1.0"]["best"]["vs_slowest_peer"] == 5.0 and r["+1.0"]["best"]["x_gradient_time"] == 2.0
    )
    assert r["+0.5"]["evotorch-snes"]["vs_slowest_peer"] == 6.0 and r["+0.5"][
        "nevergrad-ngopt"
    ] == {"seconds": None}
    text = format_quality(rows)
    assert (
        "time to +1.0 test points: gradient 1.0 min, ≥10× sooner than every peer, 1× the gradient's time"
        in text
    )
    assert (
        "best 2.0 min, ≥5× sooner than every peer, 2× the gradient's time; evotorch-pgpe not reached"
        in text
    )
    assert "time to +0.5 test points: gradient 0.5 min, ≥20× sooner than nevergrad-ngopt" in text


def test_a_missing_further_test_set_is_exit_2_before_any_row_runs(tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "--quality",
                "--tiny",
                "--out",
                str(tmp_path / "q"),
                "--test",
                str(tmp_path / "no.csv"),
            ]
        )
        == 2
    )
    assert (
        "--test: test file not found" in capsys.readouterr().err and not (tmp_path / "q").exists()
    )


def test_budget_marks_are_sampled_at_the_first_generation_end_past_each_and_read_back():
    """A 30-minute row whose generations end every 7 s, marked at 2 and 8 minutes: each mark is sampled at the
    first generation end at or past it — where a run of that budget would have stopped — and at_budgets reads
    the answer there (the final one for the longest)."""
    from evolora.benchmarks.curves import Curve, at_budgets

    clock = _manual_clock(1800.0)
    curve = Curve(clock, lambda answer: answer, marks=[120.0, 480.0])
    for end in range(0, 1807, 7):  # generation ends: 0, 7, 14, …, 1806
        clock.now = float(end)
        curve.maybe(end, lambda end=end: end / 1000)
    curve.maybe(1806, lambda: 1.806, force=True)
    times = [t for t, _ in curve.points]
    assert 126.0 in times and 483.0 in times  # the first ends at or past 120 s and 480 s
    at = at_budgets(curve.points, [2, 8, 30])
    assert at["2"] == {"seconds": 126.0, "test": 0.126, "gain": 0.126}
    assert at["8"]["seconds"] == 483.0 and at["30"]["seconds"] == 1806.0


def test_the_table_gives_each_budget_over_seeds_and_the_lead_over_the_best_peer():
    from evolora.benchmarks.quality_report import at_budget_table, format_quality

    def row(name, seed, g2, g8):
        at = {"2": {"seconds": 121, "test": 0.8 + g2, "gain": g2}}
        at["8"] = {"seconds": 481, "test": 0.8 + g8, "gain": g8}
        curve = [[0, 0.8], [121, 0.8 + g2], [481, 0.8 + g8]]
        return {"row": f"{name}-s{seed}", "of": name, "seed": seed, "at": at, "curve": curve,
                "test_base": 0.8, "test_final": 0.8 + g8, "test_gain_points": 100 * g8,
                "seconds_to": {"+0.5": None, "+1.0": None, "+2.0": None}, "budget_s": 480,
                "threads": 1, "evaluations": 10}  # fmt: skip

    rows = [
        row("best", 0, 0.004, 0.010),
        row("best", 1, 0.006, 0.014),
        row("evotorch-snes", 0, 0.002, 0.015),
        row("evotorch-snes", 1, 0.004, 0.017),
        row("evotorch-pgpe", 0, 0.005, 0.001),
    ]
    t = at_budget_table(rows)
    assert t["gain"]["best"]["2"]["mean"] == pytest.approx(0.5)
    assert t["gain"]["best"]["2"]["sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert t["gain"]["evotorch-pgpe"]["8"]["sd"] is None  # one seed: no spread
    # at 2 minutes PGPE leads the peers (+0.5 vs SNES's +0.3); at 8, SNES (+1.6)
    assert t["vs_best_peer"]["2"]["best_peer"] == "evotorch-pgpe"
    assert t["vs_best_peer"]["2"]["lead"]["best"] == pytest.approx(0.0)
    assert t["vs_best_peer"]["8"]["best_peer"] == "evotorch-snes"
    assert t["vs_best_peer"]["8"]["lead"]["best"] == pytest.approx(1.2 - 1.6)
    text = format_quality(rows)
    assert "gain pts at" in text and "at 8 min the best peer is evotorch-snes (+1.60)" in text
    assert "best -0.40" in text


@pytest.mark.parametrize(
    "flag,value", [("--budgets", "0,8"), ("--budgets", "two"), ("--seeds", "1,1"), ("--seeds", "a")]
)
def test_bad_budgets_and_seeds_exit_2_naming_the_flag(flag, value, capsys):
    assert main(["bench", "--quality", "--tiny", flag, value]) == 2
    assert flag in capsys.readouterr().err


@pytest.mark.slow
def test_budgets_and_seeds_run_each_row_once_per_seed_and_report_every_budget(tmp_path, minilm_dir):
    """`--budgets 0.02,0.05 --seeds 0,1`: each row runs once per seed for the longest budget, its curve sampled
    at the shorter; the rows are named by seed, their JSON carries the seed and the gain at each budget, and
    the table gives each budget over the seeds (tiny: a contract, not a measurement)."""
    js = tmp_path / "q.json"
    argv = ["bench", "--quality", "--tiny", "--rows", "best,evotorch-snes"]
    argv += ["--budgets", "0.05,0.02", "--seeds", "0,1", "--threads", str(THREADS)]
    assert main([*argv, "--out", str(tmp_path / "q"), "--json", str(js)]) == 0
    rows = json.loads(js.read_text())
    assert [(r["row"], r["of"], r["seed"]) for r in rows] == [
        ("best-s0", "best", 0),
        ("best-s1", "best", 1),
        ("evotorch-snes-s0", "evotorch-snes", 0),
        ("evotorch-snes-s1", "evotorch-snes", 1),
    ]
    for r in rows:
        assert list(r["at"]) == ["0.02", "0.05"] and r["budget_s"] == pytest.approx(3.0)
        assert r["at"]["0.02"]["seconds"] >= 1.2 and r["at"]["0.05"]["seconds"] >= 3.0
        assert [r["at"]["0.02"]["seconds"], r["at"]["0.02"]["test"]] in r["curve"]
        assert (tmp_path / "q" / r["row"] / "adapter" / "adapter_config.json").is_file()
    snes = rows[2]
    assert snes["strategy"] == "evotorch-snes" and snes["peer"]["library"] == "evotorch"


def test_time_ratios_compare_a_seeds_rows_with_each_other():
    from evolora.benchmarks.quality_report import time_ratios

    def row(name, seed, t05):
        return {"row": f"{name}-s{seed}", "of": name, "seed": seed, "budget_s": 600.0,
                "seconds_to": {"+0.5": t05, "+1.0": None, "+2.0": None}}  # fmt: skip

    r = time_ratios(
        [row("best", 0, 100.0), row("evotorch-snes", 0, 200.0), row("evotorch-snes", 1, 50.0)]
    )
    assert r["+0.5"]["best-s0"]["best_peer"] == "evotorch-snes-s0"  # not seed 1's faster peer
    assert r["+0.5"]["best-s0"]["x_best_peer_time"] == 0.5
    assert r["+0.5"]["best-s0"]["vs_slowest_peer"] == 2.0
