"""Judge terms score continuations with a second, frozen model: each equals a direct computation with stock
transformers on the same continuations."""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForSequenceClassification

from evolora.fitness import build_task

from ..conftest import make_spec

ROWS = [
    {"prompt": "A man is", "completion": " playing a guitar.", "answer": "a man plays the guitar"},
    {"prompt": "A woman is", "completion": " slicing an onion.", "answer": "someone cuts an onion"},
    {"prompt": "Two dogs", "completion": " run on the beach.", "answer": "dogs are running"},
    {"prompt": "A cat", "completion": " sleeps.", "answer": "a cat is asleep"},
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    (d / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return d / "rows.jsonl"


def _task(tiny, data, term):
    return build_task(
        make_spec(
            base=str(tiny),
            kind="causal",
            train_path=str(data),
            dev_path=str(data),
            train_subset=None,
            batch_size=2,
            rank=2,
            target_modules=("q_proj",),
            max_new_tokens=5,
            terms=(term,),
            validation="likelihood",
        )
    )


def _pool(model, tok, texts):
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).double()
    e = (h.double() * m).sum(1) / m.sum(1)
    return e / e.norm(dim=1, keepdim=True)


def test_judge_similarity_is_minilms_cosine_to_each_answer(tiny, data, minilm_dir):
    task = _task(tiny, data, ("judge_similarity", 1.0, {"reference": "answer", "batch_size": 3}))
    fit, terms = task.evaluate([task.seed_genome()], 0)[0]
    task.evaluator.stream = 1  # what evaluate drew on (greedy: the same texts on any stream)
    gens = task.evaluator.generate(task.train_batch(0), 5)
    model, tok = (
        AutoModel.from_pretrained(minilm_dir).eval(),
        AutoTokenizer.from_pretrained(minilm_dir),
    )
    want = (_pool(model, tok, gens) * _pool(model, tok, [r["answer"] for r in ROWS])).sum(1).mean()
    assert fit == terms["judge_similarity"] == pytest.approx(float(want), abs=1e-6)
    assert -1 < fit < 1


def test_judge_classifier_is_the_judges_probability_of_a_label(tiny, data, tmp_path, minilm_dir):
    judge = tmp_path / "judge"
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label={0: "bad", 1: "good"},
        label2id={"bad": 0, "good": 1},
    )
    BertForSequenceClassification(cfg).save_pretrained(judge)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_dir / f).is_file():
            shutil.copy(minilm_dir / f, judge / f)
    term = ("judge_classifier", 1.0, {"model": str(judge), "label": "good", "with_prompt": True})
    task = _task(tiny, data, term)
    fit, _ = task.evaluate([task.seed_genome()], 0)[0]
    gens = task.evaluator.generate(task.train_batch(0), 5)
    net = BertForSequenceClassification.from_pretrained(judge).eval()
    tok = AutoTokenizer.from_pretrained(judge)
    enc = tok([r["prompt"] + g for r, g in zip(ROWS, gens)], padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = torch.softmax(net(**enc).logits.double(), -1)[:, 1].mean()
    assert fit == pytest.approx(float(want), abs=1e-6) and 0 < fit < 1
    bad = _task(tiny, data, (term[0], 1.0, {**term[2], "label": "great"}))
    with pytest.raises(Exception, match="label 'great' is not one of the judge's 2 labels"):
        bad.evaluate([bad.seed_genome()], 0)
    assert np.isfinite(fit)
