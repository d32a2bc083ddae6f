"""The padding-free encoder forward (``fitness.packed``) on the real all-MiniLM-L6-v2: the same embeddings,
fitness, validation and test as the padded forward, on every path that reaches it; and a clear error where a
model cannot run it and the study requires it."""

import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

from evolora.evolution.errors import ConfigError
from evolora.fitness import build_task
from evolora.fitness.packed import PackedBatches, pack, unpack, why_unsupported

from ..conftest import STSB, make_spec, respec


def _spec(**kw):
    base = dict(
        train_path=str(STSB / "sts-train.csv"),
        dev_path=str(STSB / "sts-dev.csv"),
        train_subset=40,
        dev_subset=60,
        batch_size=8,
        rank=2,
        alpha=4.0,
        seed=1,
        rotate=True,
    )
    base.update(kw)
    return make_spec(**base)


def _genomes(task, n=3, scale=0.05):
    rng = np.random.default_rng(7)
    g = task.seed_genome()
    return [(g + rng.normal(0, scale, g.size)).astype(np.float32) for _ in range(n)]


def test_pack_and_unpack_keep_each_real_token_in_place():
    masks = [torch.tensor([[1, 1, 1], [1, 1, 0]]), torch.tensor([[1, 1], [1, 1]])]
    hidden = [torch.arange(18.0).view(2, 3, 3), 100 + torch.arange(12.0).view(2, 2, 3)]
    where = PackedBatches.from_masks(masks)
    x = pack(hidden, where)
    assert x.shape == (5 + 4, 3) and where.tokens == 9 and where.offsets == [0, 5]
    # nothing padded: no mask
    assert where.masks[1] is None and where.masks[0].shape == (
        2,
        1,
        1,
        3,
    )
    back = unpack(x, where, 0)
    assert torch.equal(back[0], hidden[0][0]) and torch.equal(back[1, :2], hidden[0][1, :2])
    # the padded row is zero, not whatever the padding held
    assert torch.equal(back[1, 2], torch.zeros(3))
    assert torch.equal(unpack(x, where, 1), hidden[1])


@pytest.mark.parametrize(
    "kw",
    [
        dict(layers=(3, 4, 5)),  # a top slice: the trunk cache feeds the packed layers
        dict(
            layers=None, merge_weights=False
        ),  # every layer (no cache, from the embeddings on), peft's own LoRA path
        dict(
            layers=(2, 3, 4, 5), target_modules=("value",), init="eva"
        ),  # the shape of studies/stsb-best.yaml
    ],
)
def test_packed_forward_gives_the_padded_forwards_numbers(kw):
    packed = build_task(_spec(**kw))
    padded = build_task(respec(_spec(**kw), packed=False))
    assert packed.evaluator.packed and not padded.evaluator.packed
    genomes = _genomes(packed)
    for gen in (0, 1):  # two fitness batches (rotate): a new batch is packed anew
        a, b = packed.evaluate(genomes, gen), padded.evaluate(genomes, gen)
        np.testing.assert_allclose([f for f, _ in a], [f for f, _ in b], rtol=0, atol=1e-6)
    data = packed.train_batch(0)
    packed.write(genomes[0]), padded.write(genomes[0])
    ea, eb = packed.evaluator.embed(data), padded.evaluator.embed(padded.train_batch(0))
    assert ea.shape == eb.shape and torch.allclose(ea, eb, rtol=0, atol=1e-5)
    assert packed.validate(genomes[1]) == pytest.approx(padded.validate(genomes[1]), abs=1e-6)
    assert packed.validate(packed.seed_genome()) == pytest.approx(
        padded.validate(padded.seed_genome()), abs=1e-6
    )


def test_packed_layers_refuse_training_mode():
    task = build_task(_spec(layers=(5,)))
    task.evaluator.layers[5].train()
    try:
        with pytest.raises(RuntimeError, match="eval mode"):
            task.evaluate(_genomes(task, 1), 0)
    finally:
        task.evaluator.layers[5].eval()


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory, minilm_dir):
    """A tiny DistilBERT (an encoder without BERT's layer structure), with MiniLM's tokenizer (same vocab)."""
    d = tmp_path_factory.mktemp("distilbert")
    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64)).save_pretrained(
        d
    )
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_model_without_bert_layers_keeps_the_padded_forward_or_fails_clearly(distilbert_dir):
    kw = dict(base=str(distilbert_dir), target_modules=("q_lin", "v_lin"), layers=None)
    task = build_task(_spec(**kw))  # packed: auto → off, and the run works as before
    assert not task.evaluator.packed
    assert np.isfinite(task.evaluate(_genomes(task, 2), 0)[0][0])
    assert "BERT's layer structure" in why_unsupported(
        task.flat.model.get_base_model(), task.evaluator.layers
    )
    with pytest.raises(ConfigError) as err:
        build_task(_spec(packed=True, **kw))
    assert (
        err.value.path == "model.packed"
        and "BERT's layer structure" in str(err.value)
        and "got True" in str(err.value)
    )
