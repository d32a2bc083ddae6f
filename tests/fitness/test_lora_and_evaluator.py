"""The torch side on the real all-MiniLM-L6-v2: genome ↔ PEFT state dict, aliasing, and the evaluator's
fitness against a plain stock-peft forward (full model and cached trunk)."""

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from scipy.stats import spearmanr
from transformers import AutoModel, AutoTokenizer

from evolora.fitness import (
    EncoderEvaluator,
    FlatLoRA,
    PairTask,
    attach_lora,
    build_task,
    load_sts,
    mean_pool,
)

from ..conftest import STSB, make_spec, respec


def _spec(**kw):
    base = dict(
        train_path=str(STSB / "sts-train.csv"),
        dev_path=str(STSB / "sts-dev.csv"),
        train_subset=24,
        dev_subset=30,
        batch_size=16,
        rank=2,
        alpha=4.0,
        seed=1,
    )
    base.update(kw)
    return make_spec(**base)


def _random_genome(task, seed=0, scale=0.05):
    g = task.seed_genome()
    return (g + np.random.default_rng(seed).normal(0, scale, g.size)).astype(np.float32)


def _stock_peft_cos(minilm_dir, task: PairTask, genome, pairs):
    """Reference: a fresh stock peft model, adapter loaded with set_peft_model_state_dict, plain forward."""
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    cfg = task.flat.model.peft_config["default"]
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.lora_alpha,
            target_modules=sorted(cfg.target_modules),
            layers_to_transform=cfg.layers_to_transform,
        ),
    ).eval()
    set_peft_model_state_dict(peft_model, task.flat.state_dict(genome))
    with torch.inference_mode():

        def embed(sents):
            enc = tok(
                list(sents), padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            return mean_pool(peft_model(**enc).last_hidden_state, enc["attention_mask"])

        return (embed(pairs.s1) * embed(pairs.s2)).sum(1).double().numpy()


def _stock_peft_spearman(minilm_dir, task, genome, pairs):
    return float(spearmanr(_stock_peft_cos(minilm_dir, task, genome, pairs), pairs.gold).statistic)


def test_layout_round_trips_through_peft_state_dict_bit_equal():
    task = build_task(_spec(layers=(4, 5)))
    g = _random_genome(task)
    sd = task.flat.state_dict(g)
    assert all(k.endswith(("lora_A.weight", "lora_B.weight")) and ".default." not in k for k in sd)
    assert len(sd) == 8 and task.layout.size == 2 * 2 * 2 * (384 * 2 + 2 * 384) // 2
    back = task.layout.from_arrays({k: v.numpy() for k, v in sd.items()})
    assert back.tobytes() == g.tobytes()
    task.flat.write(g)  # the aliased buffer is what the modules compute with
    assert task.flat.read().tobytes() == g.tobytes()
    lin = task.flat.model.base_model.model.encoder.layer[5].attention.self.value
    assert torch.equal(
        lin.lora_B["default"].weight, sd[[k for k in sd if "5.attention.self.value.lora_B" in k][0]]
    )


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "peft-lora-path"])
def test_generation_zero_is_exactly_the_base_model(minilm_dir, merge):
    task = build_task(_spec(layers=None, merge_weights=merge))
    g0 = task.seed_genome()
    assert np.all(task.layout.to_arrays(g0)[next(s.key for s in task.layout if s.kind == "B")] == 0)
    assert np.any(g0 != 0)  # A initialised as peft does (kaiming-uniform), not zero
    task.flat.write(g0)
    data = task.train_batch(0)
    emb = task.evaluator.embed(data)
    base = AutoModel.from_pretrained(minilm_dir).eval()
    with torch.inference_mode():
        ref = torch.empty_like(emb)
        for b in data.batches:
            ref[b.rows] = mean_pool(base(**b.inputs).last_hidden_state, b.inputs["attention_mask"])
    assert torch.equal(emb, ref)


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "peft-lora-path"])
@pytest.mark.parametrize(
    "layers,cache", [((5,), True), ((4, 5), True), (None, False), ((4, 5), False), ((2, 4), False)]
)
def test_evaluator_matches_stock_peft(minilm_dir, layers, cache, merge):
    task = build_task(
        _spec(
            layers=layers,
            cache=cache,
            terms=(("stsb_spearman", 1.0), ("stsb_neg_mse", 0.5)),
            merge_weights=merge,
        )
    )
    assert task.flat.merged is merge
    assert task.evaluator.use_cache is cache
    g = _random_genome(task, seed=len(layers or ()))
    fit, terms = task.evaluate([g], 0)[0]
    # the fixed fitness subset: rebuild the same pairs the task drew
    rng = np.random.Generator(np.random.PCG64(task.spec.data.seed))
    idx = np.sort(rng.choice(len(task.train), size=task.spec.data.train_subset, replace=False))
    pairs = task.train.take(idx)
    cos = _stock_peft_cos(minilm_dir, task, g, pairs)
    spearman = float(spearmanr(cos, pairs.gold).statistic)
    neg_mse = -float(np.mean((cos - pairs.gold / 5) ** 2))
    assert abs(terms["stsb_spearman"] - spearman) < 1e-6
    assert abs(terms["stsb_neg_mse"] - neg_mse) < 1e-6
    assert abs(fit - (spearman + 0.5 * neg_mse)) < 1e-6
    base_terms = task.evaluate([task.seed_genome()], 0)[0][1]
    # the genome really changed the model
    assert abs(base_terms["stsb_neg_mse"] - terms["stsb_neg_mse"]) > 1e-5


def test_cached_and_full_paths_agree_for_all_layers():
    t_cache = build_task(_spec(layers=None, cache=True))
    t_full = build_task(_spec(layers=None, cache=False))
    g = _random_genome(t_cache, seed=4)
    t_cache.flat.write(g)
    t_full.flat.write(g)
    a = t_cache.evaluator.embed(t_cache.train_batch(0))
    b = t_full.evaluator.embed(t_full.train_batch(0))
    assert torch.allclose(a, b, atol=1e-6)


def test_trunk_cache_is_invalidated_when_the_batch_changes():
    task = build_task(_spec(layers=(5,), rotate=True, train_subset=16))
    full = build_task(_spec(layers=(5,), rotate=True, train_subset=16, cache=False))
    g = _random_genome(task, seed=2)
    for gen in (0, 1, 2, 1):
        cached, plain = task.evaluate([g], gen)[0][0], full.evaluate([g], gen)[0][0]
        assert abs(cached - plain) < 1e-6, gen
    assert task.train_batch(1).key != task.train_batch(2).key
    assert task.evaluator.trunk_computations >= 3


def _differ_from(task, genome, layers, n, seed):
    """``n`` genomes equal to ``genome`` except for fresh noise on the genes of ``layers``."""
    genes = np.concatenate([task.flat.layout.layer_genes()[layer] for layer in layers])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = genome.copy()
        g[genes] += rng.normal(0, 0.05, genes.size).astype(np.float32)
        out.append(g)
    return out


@pytest.mark.parametrize("batched", [1, 3], ids=["sequential", "batched"])
def test_shared_prefix_trunk_scores_like_the_full_forward_and_is_keyed_by_the_shared_adapter(
    batched,
):
    """Genomes that share their adapter below layer L (an ES perturbing one layer) are scored with the trunk
    run to L once, with that adapter in it; a different shared adapter gets its own trunk, never a stale one."""

    spec = _spec(layers=(2, 3, 4, 5), cache=True, genomes_per_forward=batched)
    task, full = build_task(spec), build_task(respec(spec, cache=False))
    g = _random_genome(task, seed=7)
    for gen, (mean, layers, start) in enumerate(
        [
            (g, (4,), 4),
            (g, (5,), 5),
            (g, (3, 5), 3),
            (_random_genome(task, seed=8), (4,), 4),
            (g, (2,), 2),
        ]
    ):
        genomes = _differ_from(task, mean, layers, 4, seed=gen)
        layer, prefix = task._shared_prefix(genomes)
        assert layer == start and bool(prefix) == (start > 2)
        before = task.evaluator.trunk_computations
        got, want = task.evaluate(genomes, 0), full.evaluate(genomes, 0)
        assert all(abs(a - b) < 1e-6 for (a, _), (b, _) in zip(got, want)), gen
        # one trunk for the four genomes: new key each time
        assert task.evaluator.trunk_computations == before + 1
        assert len({round(f, 9) for f, _ in got}) == 4
        assert task.evaluator.trunk.start == 2  # the scope ends with the evaluation
    assert abs(task.validate(g) - full.validate(g)) < 1e-9


def test_rotating_batches_are_the_same_within_a_generation_and_seeded():
    a = build_task(_spec(layers=(5,), rotate=True))
    b = build_task(_spec(layers=(5,), rotate=True))
    assert a.train_batch(3).key == b.train_batch(3).key != a.train_batch(4).key


def test_per_pair_batches_are_seeded_shared_by_a_pair_and_differ_between_pairs():
    a = build_task(_spec(layers=(5,), rotate=True))
    b = build_task(_spec(layers=(5,), rotate=True))
    # (data seed, gen, pair): reproducible
    assert a.train_batch(3, 0).key == b.train_batch(3, 0).key
    keys = {a.train_batch(3, k).key for k in range(4)} | {
        a.train_batch(3).key,
        a.train_batch(4, 0).key,
    }
    assert len(keys) == 6  # each pair, the shared batch and the next generation: all different
    g, h = _random_genome(a, seed=1), _random_genome(a, seed=2)
    out = a.evaluate([g, h, g, h], 3, [0, 0, 1, 1])
    assert (
        out[0][0] == a.score(g, a.train_batch(3, 0))[0]
        and out[3][0] == a.score(h, a.train_batch(3, 1))[0]
    )
    assert out[0][0] != out[2][0]  # the same genome on two pairs' batches
    fixed = build_task(_spec(layers=(5,), rotate=False))
    with pytest.raises(ValueError, match="rotate"):
        fixed.train_batch(0, 0)


@pytest.mark.parametrize("batched", [1, 3], ids=["sequential", "batched"])
def test_trunk_memo_equals_the_per_batch_trunk_and_does_not_depend_on_the_order_batches_come(
    minilm_dir, batched
):
    """The memo (per-sentence trunk states, computed in fixed chunks) scores like the per-batch trunk, like
    stock peft, and bit for bit the same whichever generation first needed a sentence (what makes a resumed
    run equal an uninterrupted one)."""
    spec = _spec(
        layers=(4, 5),
        rotate=True,
        train_subset=12,
        genomes_per_forward=batched,
        terms=(("stsb_spearman", 1.0), ("stsb_neg_mse", 1.0)),
    )

    memo = build_task(respec(spec, trunk_memo=True))
    other = build_task(respec(spec, trunk_memo=True))
    plain = build_task(spec)
    assert memo.evaluator.memoised and not plain.evaluator.memoised
    train_sentences = set(memo.train.s1) | set(memo.train.s2)
    # the train split's sentences, nothing else
    assert set(memo.evaluator._chunk_of) == train_sentences
    genomes = [_random_genome(memo, seed=s) for s in range(4)]
    batches = [0, 0, 1, 1]
    a = {gen: memo.evaluate(genomes, gen, batches) for gen in (0, 1, 2)}
    b = {
        gen: other.evaluate(genomes, gen, batches) for gen in (2, 0, 1)
    }  # another order: other chunks first
    for gen in (0, 1, 2):
        assert [f for f, _ in a[gen]] == [f for f, _ in b[gen]]  # bit for bit
        p = plain.evaluate(genomes, gen, batches)
        for (fa, ta), (fp, tp) in zip(a[gen], p):
            assert abs(fa - fp) < 1e-5 and all(abs(ta[k] - tp[k]) < 1e-5 for k in ta)
    assert plain.evaluator.trunk_computations >= 6 and memo.evaluator.trunk_computations == 0
    computed = memo.evaluator.memo_chunks_computed
    assert 0 < computed < len(memo.evaluator._chunks)  # only the chunks holding needed sentences
    memo.evaluate(genomes, 1, batches)
    assert memo.evaluator.memo_chunks_computed == computed  # each chunk once
    data = memo.train_batch(1, 0)
    cos = _stock_peft_cos(
        minilm_dir,
        memo,
        genomes[0],
        memo.train.take(
            np.sort(
                np.random.Generator(np.random.PCG64([0, 1, 1])).choice(
                    len(memo.train), 12, replace=False
                )
            )
        ),
    )
    memo.write(genomes[0])
    assert np.allclose(memo.evaluator.pair_outputs(data).cos, cos, atol=1e-6)
    # validation sentences are not in the memo: the per-batch trunk scores them
    v = memo.validate(genomes[1])
    assert abs(v - plain.validate(genomes[1])) < 1e-9 and memo.evaluator.trunk_computations == 1


def test_trunk_memo_refuses_what_it_cannot_serve():
    from evolora.evolution.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^model\.trunk_memo: .*top slice"):
        # LoRA on layer 0: no trunk to keep
        build_task(_spec(layers=None, rotate=True, trunk_memo=True))
    # auto: off where it cannot serve
    quiet = build_task(_spec(layers=None, rotate=True, trunk_memo="auto"))
    assert not quiet.evaluator.memoised
    assert build_task(_spec(layers=(5,), rotate=True, trunk_memo="auto")).evaluator.memoised


def test_validation_is_dev_spearman(minilm_dir):
    task = build_task(_spec(layers=(4, 5)))
    g = _random_genome(task, seed=7)
    rng = np.random.Generator(np.random.PCG64(task.spec.data.seed))
    # the train draw comes first
    rng.choice(len(task.train), size=task.spec.data.train_subset, replace=False)
    dev = load_sts(task.spec.data.dev_path, "dev")
    idx = np.sort(rng.choice(len(dev), size=task.spec.data.dev_subset, replace=False))
    assert abs(task.validate(g) - _stock_peft_spearman(minilm_dir, task, g, dev.take(idx))) < 1e-6


def test_attach_lora_rejects_bad_targets(minilm_dir):
    from evolora.evolution.errors import ConfigError

    model = AutoModel.from_pretrained(minilm_dir)
    with pytest.raises(ConfigError, match="lora.target_modules.*q_proj"):
        attach_lora(model, 2, 4, ["q_proj"], None, 0)
    with pytest.raises(ConfigError, match=r"lora.layers.*\[7\]"):
        attach_lora(model, 2, 4, ["query"], [7], 0)


def test_trunk_cache_refuses_a_non_top_slice(minilm_dir):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    peft_model = attach_lora(AutoModel.from_pretrained(minilm_dir), 2, 4, ["query"], [2, 4], 0)
    with pytest.raises(ValueError, match="top slice"):
        EncoderEvaluator(
            peft_model, tok, FlatLoRA(peft_model).adapted_layers, torch.device("cpu"), cache=True
        )


@pytest.mark.parametrize(
    "layers,cache", [((5,), True), ((4, 5), True), (None, False), (None, True)]
)
def test_batched_population_path_matches_the_sequential_path(layers, cache):

    seq = build_task(
        _spec(layers=layers, cache=cache, terms=(("stsb_spearman", 1.0), ("stsb_neg_mse", 1.0)))
    )
    bat = build_task(respec(seq.spec, genomes_per_forward=3))
    assert bat.genomes_per_forward == 3 and seq.genomes_per_forward == 1  # CPU default: sequential
    genomes = [_random_genome(seq, seed=s) for s in range(5)]  # 5 = a chunk of 3 and a chunk of 2
    a, b = seq.evaluate(genomes, 0), bat.evaluate(genomes, 0)
    for (fa, ta), (fb, tb) in zip(a, b):
        assert abs(fa - fb) < 1e-5 and all(abs(ta[k] - tb[k]) < 1e-5 for k in ta)
    # five different genomes, five different scores
    assert len({round(t["stsb_neg_mse"], 9) for _, t in a}) == 5


def test_merged_weights_never_drift_and_switch_cleanly():
    task = build_task(_spec(layers=(4, 5), cache=True))
    lin = task.flat.model.base_model.model.encoder.layer[5].attention.self.value.base_layer
    w0 = lin.weight.detach().clone()
    g = _random_genome(task, seed=11)
    first = task.evaluate([g], 0)[0]
    for s in range(5):  # many other genomes in between
        task.evaluate([_random_genome(task, seed=s)], 0)
    # bit-equal: W is recomputed from the pristine W0 each time
    assert task.evaluate([g], 0)[0] == first
    task.flat.write(task.seed_genome())
    assert torch.equal(lin.weight, w0)
    task.flat.set_merged(False)
    assert torch.equal(lin.weight, w0)
    assert abs(task.evaluate([g], 0)[0][0] - first[0]) < 1e-6
