"""``lora.genome: xs`` (LoRA-XS) on the real all-MiniLM-L6-v2: the cores start at the base model, expand to the
weight change s·U_r Σ_r R V_rᵀ, export as a stock PEFT adapter that scores what evolora scores, and agree
between the sequential and batched population paths."""

import numpy as np
import pytest
import torch
from peft import PeftModel
from scipy.stats import spearmanr
from transformers import AutoModel, AutoTokenizer

from evolora.evolution.errors import ConfigError
from evolora.fitness import build_task, mean_pool
from evolora.fitness.genomes import XSGenome, eva_seed, svd_factors

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
        genome="xs",
        target_modules=("query", "value", "dense"),
        layers=(4, 5),
    )
    base.update(kw)
    return make_spec(**base)


@pytest.fixture(scope="module")
def task():
    return build_task(_spec())


def _cores(task, seed=0, scale=0.3):
    return np.random.default_rng(seed).normal(0, scale, task.layout.size).astype(np.float32)


def test_the_genome_is_one_r_by_r_core_per_adapted_matrix(task):
    modules = [s for s in task.flat.layout if s.kind == "A"]
    # query, value, attention.output.dense, intermediate.dense, output.dense per layer
    assert len(modules) == 2 * 5
    assert all(s.shape == (2, 2) and s.kind == "core" for s in task.layout)
    assert task.layout.size == 4 * len(modules)
    assert task.flat.layout.size > 100 * task.layout.size


def test_zero_cores_are_exactly_the_base_model(task):
    seed = task.seed_genome()
    assert not seed.any()
    base = task.validate(seed)
    with task.flat.base_only():
        ref = float(task.val_term(task._outputs(task.dev)))
    assert base == ref


def test_factors_are_the_truncated_svd_with_fixed_signs():
    w = torch.randn(12, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, basis = svd_factors(w, 3)
    # the same subspace: the sign convention picks one representative
    a2, basis2 = svd_factors(-w, 3)
    u, s, vh = np.linalg.svd(w.numpy())
    # the rank-3 approximation
    np.testing.assert_allclose(basis @ a, (u[:, :3] * s[:3]) @ vh[:3], atol=1e-5)
    np.testing.assert_allclose(a @ a.T, np.eye(3), atol=1e-5)  # orthonormal rows
    assert (basis[np.abs(basis).argmax(axis=0), range(3)] > 0).all()
    np.testing.assert_allclose(np.abs(a2), np.abs(a), atol=1e-5)
    np.testing.assert_allclose(basis2 @ a2, -(basis @ a), atol=1e-5)


def test_a_core_changes_the_weight_by_s_u_sigma_r_vt(task):
    g = _cores(task)
    task.write(g)  # merged: the module's weight is W0 + s·B·A
    pristine = task.flat.pristine_weights()
    modules = dict(task.flat.model.named_modules())
    for core in task.layout:
        name = core.key[: -len(XSGenome.CORE)]
        a_key = name + ".lora_A.weight"
        a, basis = svd_factors(pristine[a_key], 2)
        mod = modules[name]
        want = pristine[a_key].numpy() + mod.scaling["default"] * basis @ core.view(g) @ a
        np.testing.assert_allclose(mod.base_layer.weight.detach().numpy(), want, atol=1e-5)


def test_exported_xs_adapter_scores_the_same_with_stock_peft(task, tmp_path, minilm_dir):
    g = _cores(task, seed=1)
    pairs = task.val_items  # the validation pairs validate() scores
    ours = task.validate(g)
    task.save_adapter(g, tmp_path / "adapter")
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    model = PeftModel.from_pretrained(
        AutoModel.from_pretrained(minilm_dir), str(tmp_path / "adapter")
    ).eval()
    with torch.inference_mode():

        def embed(sents):
            enc = tok(
                list(sents), padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            return torch.nn.functional.normalize(
                mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]), dim=-1
            )

        cos = (embed(pairs.s1) * embed(pairs.s2)).sum(-1).numpy()
    assert abs(spearmanr(cos, pairs.gold).statistic - ours) < 1e-6
    assert abs(ours - task.validate(task.seed_genome())) > 1e-4  # the adapter does something


def test_batched_population_path_matches_the_sequential_path_for_xs(task):
    batched = build_task(respec(_spec(), genomes_per_forward=3))
    genomes = [_cores(task, seed=s) for s in range(3)]
    seq = [f for f, _ in task.evaluate(genomes, 0)]
    bat = [f for f, _ in batched.evaluate(genomes, 0)]
    np.testing.assert_allclose(bat, seq, atol=2e-5)


def test_two_builds_give_the_same_factors_bit_for_bit(task):
    again = build_task(_spec())
    g = _cores(task, seed=2)
    assert np.array_equal(task.genome.expand(g), again.genome.expand(g))


def test_eva_a_spans_the_inputs_top_principal_directions_at_kaiming_output_size(minilm_dir):
    """``lora.init: eva``: each A's rows are the top-r eigenvectors of the uncentred second moment of its
    module's input tokens on the chosen train examples (computed here independently from the plain HF
    model's hidden states), scaled so E|A x|² = r·tr(C)/(3·in) as for peft's kaiming A; B stays 0, so the
    seed is exactly the base model; the same build gives the same bits."""
    spec = _spec(genome="full", init="eva", init_examples=40, target_modules=("query", "value"))
    task = build_task(spec)
    kaiming = build_task(respec(spec, init="kaiming"))
    seed = task.seed_genome()
    items = task._eva_items()
    assert len(items) == 40 and set(zip(items.s1, items.s2)) <= set(
        zip(task.train.s1, task.train.s2)
    )
    sentences = list(dict.fromkeys(items.s1 + items.s2))
    tok, model = (
        AutoTokenizer.from_pretrained(minilm_dir),
        AutoModel.from_pretrained(minilm_dir).eval(),
    )
    with torch.no_grad():
        enc = tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**enc, output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].bool()
    for s in task.flat.layout:
        if s.kind == "B":
            assert not seed[s.offset : s.offset + s.size].any()
            continue
        layer = int(s.key.split(".layer.")[1].split(".")[0])
        x = hidden[layer][mask].double().numpy()  # the tokens entering this layer's query / value
        c = x.T @ x / len(x)
        vals, vecs = np.linalg.eigh(c)
        a = s.view(seed).astype(np.float64)
        rows = a / np.linalg.norm(a, axis=1, keepdims=True)
        # top-2, in order
        np.testing.assert_allclose(np.abs(rows @ vecs[:, ::-1][:, :2]), np.eye(2), atol=2e-3)
        assert (rows[range(2), np.abs(rows).argmax(axis=1)] > 0).all()  # the sign convention
        np.testing.assert_allclose(
            np.mean(np.sum((x @ a.T) ** 2, axis=1)), 2 * np.trace(c) / (3 * 384), rtol=2e-3
        )
        # peft's draw: the same output size, ±sampling
        k = s.view(kaiming.seed_genome()).astype(np.float64)
        assert (
            0.5
            < np.mean(np.sum((x @ k.T) ** 2, axis=1)) / np.mean(np.sum((x @ a.T) ** 2, axis=1))
            < 2
        )
    with task.flat.base_only():
        base = float(task.val_term(task._outputs(task.dev)))
    assert task.validate(seed) == base  # B = 0: generation 0 is the base model, whatever A is
    assert build_task(spec).seed_genome().tobytes() == seed.tobytes()


def test_eva_seed_raises_when_no_token_reaches_a_module():
    task = build_task(_spec(genome="full", target_modules=("query",)))
    with pytest.raises(ValueError, match="eva saw no input tokens"):
        eva_seed(task.flat, task.seed_genome(), [])


def test_a_subspace_keeps_every_a_within_the_top_k_eva_directions_and_starts_at_the_eva_seed(
    tmp_path,
):
    """``lora.a_subspace: k``: the genome holds each A as r×k coordinates in the module's top-k input
    directions (B unchanged), its seed expands to the eva seed (to float32 rounding; B = 0, so generation 0 is
    exactly the base model),
    any genome expands to an A whose rows lie in that span with |B R| = |B A|, and the adapter saved from it
    scores in stock peft what evolora scores."""
    spec = _spec(genome="full", init="eva", init_examples=40, target_modules=("query", "value"))
    eva = build_task(spec)
    sub = build_task(respec(spec, a_subspace=6))
    np.testing.assert_allclose(
        sub.genome.expand(sub.seed_genome()), eva.seed_genome(), rtol=0, atol=1e-7
    )
    by_key = {s.key: s for s in sub.layout}
    assert [s.key for s in sub.layout] == [s.key for s in eva.flat.layout]
    for f in eva.flat.layout:
        assert by_key[f.key].shape == ((2, 6) if f.kind == "A" else f.shape)
    assert sub.layout.size == eva.flat.layout.size - 4 * 2 * (384 - 6)
    g = sub.seed_genome() + np.random.default_rng(0).normal(0, 0.05, sub.layout.size).astype(
        np.float32
    )
    full = sub.genome.expand(g)
    _, dirs = eva_seed(eva.flat, eva.flat.read(), eva._eva_batches(eva._eva_items()), 6)
    for f in eva.flat.layout:
        if f.kind != "A":
            assert np.array_equal(f.view(full), by_key[f.key].view(g))
            continue
        a, v = f.view(full).astype(np.float64), dirs[f.key].astype(np.float64)
        np.testing.assert_allclose(a @ v.T @ v, a, atol=1e-6)  # rows within the top-6 span
        b = by_key[f.key.replace(".lora_A.", ".lora_B.")].view(g).astype(np.float64)
        np.testing.assert_allclose(
            np.linalg.norm(b @ by_key[f.key].view(g)), np.linalg.norm(b @ a), rtol=1e-5
        )
    assert sub.validate(sub.seed_genome()) == eva.validate(eva.seed_genome())
    assert sub.validate(g) == eva.validate(full)  # the same LoRA weights in the model
    out = tmp_path / "adapter"
    sub.save_adapter(g, out)
    from safetensors.numpy import load_file

    saved = load_file(str(out / "adapter_model.safetensors"))
    for f in eva.flat.layout:  # a stock PEFT adapter holding the expanded A and B
        key = next(
            k
            for k in saved
            if k.replace(".default", "").endswith(
                f.key.split("base_model.model.")[-1].replace(".default", "")
            )
        )
        np.testing.assert_array_equal(saved[key], f.view(full))
    with pytest.raises(Exception, match="a_subspace"):
        build_task(respec(spec, a_subspace=500))  # wider than the 384 inputs
    with pytest.raises(
        ConfigError,
        match=r"^lora\.a_subspace: keeps A within the eva directions: it needs lora\.init: eva",
    ):
        build_task(respec(spec, init="kaiming", a_subspace=6))


def test_b_subspace_keeps_each_value_b_within_its_consumers_top_k_directions(tmp_path):
    """``lora.b_subspace: k``: each value projection's B is held as k×r coordinates Q in the top-k right singular
    directions of the attention output projection that reads it (B = U_k Q), other modules' B and every A as
    they are; the seed is exactly the full seed (B = 0: the base model); a genome expands to a B whose columns lie
    in that span, with |Q| = |B|; the directions are W_o's own (W_o U_k carries more of W_o than any other k
    directions); the model scores the expanded weights; together with ``a_subspace``; and bad widths or a layout
    without a value projection are refused, naming the field."""
    spec = _spec(genome="full", init="eva", init_examples=40, target_modules=("query", "value"))
    eva = build_task(spec)
    sub = build_task(respec(spec, b_subspace=8))
    assert np.array_equal(sub.genome.expand(sub.seed_genome()), eva.seed_genome())
    by_key = {s.key: s for s in sub.layout}
    assert [s.key for s in sub.layout] == [s.key for s in eva.flat.layout]
    modules = dict(eva.flat.model.named_modules())
    for f in eva.flat.layout:
        value_b = f.kind == "B" and ".value." in f.key
        assert by_key[f.key].shape == ((8, 2) if value_b else f.shape)
    assert sub.layout.size == eva.flat.layout.size - 2 * 2 * (384 - 8)
    g = sub.seed_genome() + np.random.default_rng(0).normal(0, 0.05, sub.layout.size).astype(
        np.float32
    )
    full = sub.genome.expand(g)
    for f in eva.flat.layout:
        if not (f.kind == "B" and ".value." in f.key):
            assert np.array_equal(f.view(full), by_key[f.key].view(g))
            continue
        b, q = f.view(full).astype(np.float64), by_key[f.key].view(g).astype(np.float64)
        wo = modules[f.key.split(".attention.self.value")[0] + ".attention.output.dense"]
        wo = getattr(wo, "base_layer", wo).weight.detach().double().numpy()  # (hidden, value width)
        u = np.linalg.svd(b, full_matrices=False)[0][:, :2]  # B's column space (rank 2)
        s = np.linalg.svd(wo, compute_uv=False)
        # B's columns lie in W_o's top-8 right singular span: |W_o u| ≥ the 8th singular value for each unit column
        assert np.all(np.linalg.norm(wo @ u, axis=0) >= s[7] - 1e-6)
        np.testing.assert_allclose(np.linalg.norm(b), np.linalg.norm(q), rtol=1e-5)
    assert sub.validate(g) == eva.validate(full)  # the same LoRA weights in the model
    # exports the expanded factors as any full genome does
    sub.save_adapter(g, tmp_path / "adapter")
    both = build_task(respec(spec, a_subspace=6, b_subspace=8))
    assert both.layout.size == eva.flat.layout.size - 4 * 2 * (384 - 6) - 2 * 2 * (384 - 8)
    np.testing.assert_allclose(
        both.genome.expand(both.seed_genome()), eva.seed_genome(), rtol=0, atol=1e-7
    )
    # an adapted consumer (attention.output.dense among the "dense" modules): its frozen W₀ gives the directions
    dense = build_task(respec(spec, target_modules=("value", "dense"), b_subspace=8))
    reduced = [s.key for s in dense.layout if s.kind == "B" and s.shape[0] == 8]
    assert len(reduced) == 2 and all(".value." in k for k in reduced)
    dense_modules = dict(dense.flat.model.named_modules())
    g_dense = dense.seed_genome() + np.random.default_rng(1).normal(
        0, 0.05, dense.layout.size
    ).astype(np.float32)
    full_dense = dense.genome.expand(g_dense)
    for key in reduced:
        wo = dense.flat.pristine_weights()[
            key.split(".attention.self.value")[0] + ".attention.output.dense.lora_A.weight"
        ]
        assert torch.equal(
            wo,
            dense_modules[
                key.split(".attention.self.value")[0] + ".attention.output.dense"
            ].base_layer.weight,
        )
        b = next(s for s in dense.flat.layout if s.key == key).view(full_dense).astype(np.float64)
        u = np.linalg.svd(b, full_matrices=False)[0]  # (384, 2): B's column space
        assert np.all(
            np.linalg.norm(wo.double().numpy() @ u, axis=0)
            >= np.linalg.svd(wo.double().numpy(), compute_uv=False)[7] - 1e-6
        )
    with pytest.raises(Exception, match="b_subspace") as err:
        build_task(respec(spec, b_subspace=500))  # wider than the 384 value channels
    assert "500" in str(err.value)
    with pytest.raises(Exception, match="b_subspace.*no adapted module is one"):
        build_task(respec(spec, target_modules=("query",), b_subspace=8))
    with pytest.raises(
        ConfigError, match=r"^lora\.b_subspace: holds a full genome's B in a subspace"
    ):
        build_task(_spec(b_subspace=8))
