"""`evolora bench --reward`: its JSON contract for both tasks and every row (evolora, TRL's GRPO, EvoTorch's
SNES), TRL at its defaults with the same reward callable, and each row's answer, as a stock PEFT adapter, writing
with stock transformers + peft what the row says it writes (tiny budget: the contract, no measurement)."""

import json

import pytest

from evolora.benchmarks.reward import LEVELS, REWARD_ROWS, TASKS
from evolora.orchestrator.cli.commands import main

from .conftest import THREADS

KEYS = {
    "row",
    "task",
    "metric",
    "test_base",
    "test_final",
    "test_gain",
    "seconds_to",
    "budget_s",
    "curve",
    "test_guards",
    "samples",
    "peak_rss_mib",
    "threads",
    "adapter",
    "seconds",
    "vs_evolora",
}


def _stock_generations(adapter: str, prompts: list[str], new_tokens: int) -> list[str]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evolora.fitness.lfm2 import build_tiny

    base = build_tiny()
    tok = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    out = []
    with torch.no_grad():
        for p in prompts:
            x = torch.tensor([tok(p)["input_ids"]])
            y = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
            out.append(tok.decode(y[0, x.shape[1] :], skip_special_tokens=True))
    return out


@pytest.mark.slow
def test_reward_table_contract_and_answers_load_with_stock_peft(tmp_path):
    out, js = tmp_path / "r", tmp_path / "reward.json"
    argv = ["bench", "--reward", "--tiny", "--budgets", "0.05,0.02", "--threads", str(THREADS)]
    assert main([*argv, "--out", str(out), "--json", str(js)]) == 0
    rows = json.loads(js.read_text())
    assert [(r["task"], r["row"]) for r in rows] == [(t, r) for t in TASKS for r in REWARD_ROWS]
    assert (out / "reward.png").stat().st_size > 10_000
    for r in rows:
        assert KEYS <= set(r), r["row"]
        same_task = [e for e in rows if e["task"] == r["task"]]
        assert {e["test_base"] for e in same_task} == {r["test_base"]}  # one base, one test split
        assert r["curve"][0][1] == r["test_base"] and r["curve"][-1][1] == r["test_final"]
        assert all(a[0] <= b[0] for a, b in zip(r["curve"], r["curve"][1:]))
        assert set(r["seconds_to"]) == {f"+{lv}" for lv in LEVELS} and r["threads"] == THREADS
        assert r["metric"] == f"bench_{r['task']}"  # the bench's own reward callable, in every row
        assert list(r["at"]) == ["0.02", "0.05"] and r["budget_s"] == pytest.approx(3.0)
        assert [r["at"]["0.02"]["seconds"], r["at"]["0.02"]["test"]] in r["curve"]
        if r["task"] == "keyword":  # the study's likelihood budget, reported on test for every row
            assert set(r["test_guards"]) == {"likelihood"} == set(r["test_guards_base"])
        if (
            r["row"] == "evotorch-snes"
        ):  # the peer as an evolora strategy: EvoTorch's SNES, its version
            assert r["peer"]["library"] == "evotorch" and r["peer"]["algorithm"] == "SNES"
        if r["row"] == "grpo":
            trl = r["trl"]
            assert (trl["num_generations"], trl["beta"], trl["learning_rate"]) == (8, 0.0, 1e-6)
            assert r["steps"] >= 1
        prompts = [s["prompt"] for s in r["samples"]]
        said = _stock_generations(r["adapter"], prompts, 3)
        assert said == [s["generation"] for s in r["samples"]], (r["task"], r["row"])


def test_the_reward_table_gives_each_budget_over_seeds_and_evoloras_lead():
    from evolora.benchmarks.reward_report import budget_table, format_reward

    def row(name, seed, g2, g8):
        at = {"2": {"seconds": 121, "test": 0.2 + g2, "gain": g2}}
        at["8"] = {"seconds": 481, "test": 0.2 + g8, "gain": g8}
        return {"task": "arithmetic", "row": name, "seed": seed, "at": at, "test_base": 0.2,
                "test_final": 0.2 + g8, "test_gain": g8, "seconds_to": {f"+{lv}": None for lv in LEVELS},
                "test_guards": {}, "test_guards_base": {}, "peak_rss_mib": 100.0, "vs_evolora": {},
                "curve": [[0, 0.2], [481, 0.2 + g8]]}  # fmt: skip

    rows = [row("evolora", 0, 0.05, 0.08), row("evolora", 1, 0.07, 0.10)]
    rows += [
        row("grpo", 0, 0.00, 0.12),
        row("grpo", 1, 0.02, 0.14),
        row("evotorch-snes", 0, 0.012, 0.0),
    ]
    t = budget_table(rows)["arithmetic"]
    assert t["gain"]["evolora"]["2"]["mean"] == pytest.approx(0.06)
    assert t["gain"]["evotorch-snes"]["8"]["sd"] is None
    assert t["evolora_vs_best_peer"]["2"] == {
        "best_peer": "evotorch-snes",
        "lead": pytest.approx(0.048),
    }
    assert t["evolora_vs_best_peer"]["8"] == {"best_peer": "grpo", "lead": pytest.approx(-0.04)}
    text = format_reward(rows)
    assert "evolora-s1" in text and "arithmetic at 8 min: evolora -0.040 against grpo" in text
