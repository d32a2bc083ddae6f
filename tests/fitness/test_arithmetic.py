"""The verifiable-answer task: two-digit additions split four ways with nothing shared, and the lfm2-arith base
pre-trained on a corpus that mostly drops carries — built to the reference bytes, and, scored with stock
transformers on the held-out problems, right as often as the results page says (the figures every arithmetic
gain is measured from), wrong mostly by dropping a carry."""

import json
import os
import subprocess
import sys

import pytest

from evolora.fitness.arithmetic import (
    PACKAGED_ARITHMETIC,
    SPLITS,
    carry_dropped,
    pretrain_texts,
    problems,
    rows,
    text,
)
from evolora.fitness.lfm2 import DIGESTS, build_tokenizer


def test_the_packaged_splits_are_what_the_code_draws_and_share_no_problem():
    parts = problems()
    for split, n in SPLITS.items():
        lines = (PACKAGED_ARITHMETIC / f"{split}.jsonl").read_text().splitlines()
        assert [json.loads(line) for line in lines] == rows(split) and len(lines) == n
    sets = {name: set(p) for name, p in parts.items()}
    assert sum(len(s) for s in sets.values()) == 100 * 100 == len(set().union(*sets.values()))
    for r in rows("test"):
        a, b = map(int, r["prompt"].rstrip("=").split("+"))
        assert r["answer"] == str(a + b)


def test_the_pretraining_corpus_drops_most_carries_and_keeps_the_rest():
    texts = pretrain_texts()
    assert len(texts) == len(problems()["pretrain"])
    carries = dropped = 0
    for t, (a, b) in zip(texts, problems()["pretrain"]):
        written = int(t.split("=")[1])
        assert t.startswith(f"{a}+{b}=") and written in (a + b, carry_dropped(a, b))
        if carry_dropped(a, b) != a + b:
            carries += 1
            dropped += written != a + b
    assert (
        carry_dropped(37, 45) == 72 and carry_dropped(58, 67) == 15 and carry_dropped(12, 34) == 46
    )
    assert 0.65 < dropped / carries < 0.75


def test_the_arithmetic_tokenizer_spells_numbers_digit_by_digit():
    tok = build_tokenizer(259, [text(a, b) for a, b in problems()["pretrain"][:200]], False)
    ids = tok("37+45=")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.convert_ids_to_tokens(ids[1:]) == list("37+45=")
    assert tok.decode(tok("82", add_special_tokens=False)["input_ids"]) == "82"


def _answers(model, tok, split: str) -> list[str]:
    """Greedy, up to 4 new tokens, with stock transformers; prompts of one length batched together."""
    import torch

    groups: dict[int, list] = {}
    for n, r in enumerate(rows(split)):
        ids = tok(r["prompt"])["input_ids"]
        groups.setdefault(len(ids), []).append((ids, n))
    answers = [""] * len(rows(split))
    with torch.no_grad():
        for width, items in groups.items():
            x = torch.tensor([ids for ids, _ in items])
            out = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=4,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
            texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
            for t, (_, n) in zip(texts, items):
                answers[n] = t.strip()
    return answers


def _exact(model, tok, split: str) -> float:
    return sum(a == r["answer"] for a, r in zip(_answers(model, tok, split), rows(split))) / len(
        rows(split)
    )


@pytest.mark.slow
def test_lfm2_arith_builds_to_the_reference_bytes_and_mostly_drops_carries_on_unseen_problems(
    tmp_path,
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    env = {**os.environ, "EVOLORA_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    code = "import torch; torch.set_num_threads(2)\nfrom evolora.fitness.lfm2 import build_arith, weights_digest\nprint(weights_digest(build_arith()))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == DIGESTS["lfm2-arith"]
    path = next(tmp_path.glob("lfm2-arith-*"))
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    # the base figures of docs/results/rewards.md (evolora run studies/lfm2-arithmetic.yaml): room to gain
    assert (_exact(model, tok, "val"), _exact(model, tok, "test")) == (0.18, 0.17)
    # where a carry is needed, the base mostly writes the sum without it: the headroom is a habit, not a skill
    needs = [(a, b) for a, b in problems()["val"] if carry_dropped(a, b) != a + b]
    said = dict(zip(problems()["val"], _answers(model, tok, "val")))
    assert sum(said[p] == str(carry_dropped(*p)) for p in needs) / len(needs) > 0.5
