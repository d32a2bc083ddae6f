"""Causal models on the tiny LFM2 (real architecture: conv and attention blocks): block-type targeting,
every causal fitness plug-in against a direct stock-peft computation, and the cached trunk."""

import json
import re

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, AutoTokenizer

from evolora.evolution.errors import ConfigError
from evolora.fitness import attach_lora, build_task
from evolora.fitness.causal import TextExample

from ..conftest import STSB, make_spec, respec

PROMPTS = [
    TextExample("A man is", " playing a guitar.", "playing"),
    TextExample("The cat", " sat on the mat.", "sat"),
    TextExample("", "Stocks fell sharply on Monday.", None),
    TextExample("News:", " the president spoke.", "the"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    (d / "train.jsonl").write_text("\n".join(json.dumps(e.__dict__) for e in PROMPTS))
    (d / "dev.jsonl").write_text("\n".join(json.dumps(e.__dict__) for e in PROMPTS[::-1]))
    return d


def _spec(tiny, data, **kw):
    base = dict(
        base=str(tiny),
        kind="causal",
        train_path=str(data / "train.jsonl"),
        dev_path=str(data / "dev.jsonl"),
        train_subset=None,
        dev_subset=None,
        batch_size=3,
        rank=2,
        alpha=4.0,
        seed=1,
        target_modules=("q_proj", "v_proj", "in_proj", "w2"),
        max_new_tokens=6,
        terms=(
            ("likelihood", 1.0),
            ("kl_to_base", 0.3),
            ("distinct_n", 0.1, {"n": 1}),
            ("keyword", 0.2, {"keywords": ["the"], "regex": r"\d"}),
            ("exact_match", 0.1),
        ),
        validation="likelihood",
    )
    base.update(kw)
    return make_spec(**base)


def _genome(task, seed=0, scale=0.3):
    g = task.seed_genome()
    return (g + np.random.default_rng(seed).normal(0, scale, g.size)).astype(np.float32)


def _stock(tiny, task, genome):
    """A fresh stock peft model with the genome's adapter (and the plain base for KL)."""
    cfg = task.flat.model.peft_config["default"]
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny),
        LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.lora_alpha,
            target_modules=cfg.target_modules,
            layers_to_transform=cfg.layers_to_transform,
            rank_pattern=cfg.rank_pattern,
            alpha_pattern=cfg.alpha_pattern,
        ),
    ).eval()
    set_peft_model_state_dict(model, task.flat.state_dict(genome))
    return model


def _direct_terms(tiny, task, genome):
    tok = AutoTokenizer.from_pretrained(tiny)
    model = _stock(tiny, task, genome)
    base = AutoModelForCausalLM.from_pretrained(tiny).eval()
    lps, kls, gens = [], [], []
    with torch.inference_mode():
        for ex in PROMPTS:  # one example at a time: no padding at all
            p = tok(ex.prompt)["input_ids"]  # as a user feeds it: the tokenizer adds its <|bos|>
            t = tok(ex.target, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p + t])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
            blogp = torch.log_softmax(base(input_ids=ids).logits[0, :-1].double(), -1)
            lps.append(float(logp[len(p) - 1 :].gather(-1, ids[0, len(p) :, None]).mean()))
            kls.append((logp.exp() * (logp - blogp)).sum(-1))
            out = model.generate(
                input_ids=torch.tensor([p]),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            gens.append(tok.decode(out[0, len(p) :], skip_special_tokens=True))
    words = [w for g in gens for w in g.split()]
    first = [(g.strip().splitlines() or [""])[0].strip() for g in gens]
    answered = [(f, e.answer) for f, e in zip(first, PROMPTS) if e.answer is not None]
    return {
        "likelihood": float(np.mean(lps)),
        "kl_to_base": -float(torch.cat(kls).mean()),
        "distinct_n": len(set(words)) / len(words) if words else 0.0,
        "keyword": sum(bool(re.search(r"the|\d", g, re.I)) for g in gens) / len(gens),
        "exact_match": sum(f == a for f, a in answered) / len(answered),
    }


def test_block_type_targeting_puts_lora_exactly_on_the_requested_modules(tiny):
    model = AutoModelForCausalLM.from_pretrained(tiny)
    blocks = {
        "attention": {"modules": ["q_proj", "out_proj"], "rank": 4, "alpha": 8.0, "layers": [5]},
        "conv": {"modules": ["out_proj"], "rank": 2, "alpha": 2.0, "layers": [0, 3]},
    }
    peft_model = attach_lora(model, 8, 8.0, ["unused"], None, 0, blocks=blocks)
    wrapped = {
        n.removeprefix("base_model.model."): m
        for n, m in peft_model.named_modules()
        if isinstance(m, LoraLayer)
    }
    assert set(wrapped) == {
        "model.layers.5.self_attn.q_proj",
        "model.layers.5.self_attn.out_proj",
        "model.layers.0.conv.out_proj",
        "model.layers.3.conv.out_proj",
    }
    assert wrapped["model.layers.5.self_attn.out_proj"].lora_A["default"].weight.shape[0] == 4
    assert wrapped["model.layers.3.conv.out_proj"].lora_A["default"].weight.shape[0] == 2
    assert wrapped["model.layers.3.conv.out_proj"].scaling["default"] == 1.0


def test_block_targeting_errors_name_the_field(tiny):
    model = AutoModelForCausalLM.from_pretrained(tiny)
    with pytest.raises(ConfigError, match=r"lora.blocks.conv.modules.*q_proj"):
        attach_lora(
            model,
            2,
            2.0,
            [],
            None,
            0,
            blocks={"conv": {"modules": ["q_proj"], "rank": 2, "alpha": 2.0, "layers": None}},
        )
    with pytest.raises(ConfigError, match=r"lora.blocks.attention.layers.*\[0\]"):
        attach_lora(
            model,
            2,
            2.0,
            [],
            None,
            0,
            blocks={"attention": {"modules": ["q_proj"], "rank": 2, "alpha": 2.0, "layers": [0]}},
        )


def test_every_causal_plugin_matches_a_direct_computation(tiny, data):
    task = build_task(_spec(tiny, data, layers=None, cache=False))
    g = _genome(task)
    fit, terms = task.evaluate([g], 0)[0]
    direct = _direct_terms(tiny, task, g)
    for name in ("likelihood", "kl_to_base"):
        assert abs(terms[name] - direct[name]) < 1e-6, name
    for name in ("distinct_n", "keyword", "exact_match"):
        assert terms[name] == direct[name], name
    assert abs(fit - sum(w * terms[n] for n, w, *_ in task.spec.fitness.terms)) < 1e-12
    assert (
        terms["kl_to_base"] < 0
        and task.evaluate([task.seed_genome()], 0)[0][1]["kl_to_base"] == 0.0
    )


@pytest.mark.parametrize("layers", [(5,), (4, 5), None])
def test_cached_trunk_matches_stock_peft(tiny, data, layers):
    terms = (("likelihood", 1.0),)
    cached = build_task(_spec(tiny, data, layers=layers, cache=True, terms=terms))
    g = _genome(cached, seed=len(layers or ()))
    lp = cached.evaluate([g], 0)[0][0]
    assert abs(lp - _direct_terms(tiny, cached, g)["likelihood"]) < 1e-6
    assert cached.evaluator.trunk_computations == 1
    other = [TextExample("", "A completely different sentence here.")]
    # a new batch → a new trunk, not a stale one
    cached.evaluator.mean_logprobs(cached.evaluator.encode(other))
    assert cached.evaluator.trunk_computations == 2
    assert cached.evaluate([g], 0)[0][0] == lp


@pytest.mark.parametrize("batched", [1, 2], ids=["sequential", "batched"])
def test_shared_prefix_trunk_on_the_hybrid_model_matches_the_full_forward(tiny, data, batched):
    """Genomes that differ only from layer 2 up (an ES perturbing one layer at a time): the trunk runs layers
    0-1 once with their shared adapter, and every term scores as without any cache."""

    spec = _spec(tiny, data, cache=True, genomes_per_forward=batched)
    task, full = build_task(spec), build_task(respec(spec, cache=False))
    base = _genome(task, seed=3)
    genes = task.flat.layout.layer_genes()
    top = np.concatenate([genes[layer] for layer in genes if layer >= 2])
    genomes = []
    for s in range(3):
        g = base.copy()
        g[top] += np.random.default_rng(10 + s).normal(0, 0.3, top.size).astype(np.float32)
        genomes.append(g)
    assert task._shared_prefix(genomes)[0] == 2
    before = task.evaluator.trunk_computations
    for (fa, ta), (fb, tb) in zip(task.evaluate(genomes, 0), full.evaluate(genomes, 0)):
        assert abs(fa - fb) < 1e-5 and all(abs(ta[k] - tb[k]) < 1e-5 for k in ta)
    assert task.evaluator.trunk_computations == before + 1


def test_unknown_term_params_are_config_errors(tiny, data):
    with pytest.raises(ConfigError, match=r"fitness.terms.0.params"):
        build_task(_spec(tiny, data, terms=(("keyword", 1.0, {"words": ["x"]}),)))
    with pytest.raises(ConfigError, match=r"fitness.terms.0.name.*'pairs'"):
        build_task(_spec(tiny, data, terms=(("stsb_spearman", 1.0),)))


def test_sts_sentences_of_a_genre_as_causal_data(tiny):
    task = build_task(
        make_spec(
            base=str(tiny),
            kind="causal",
            train_path=str(STSB / "sts-train.csv"),
            dev_path=str(STSB / "sts-dev.csv"),
            train_genre="main-news",
            dev_genre="main-news",
            train_subset=8,
            dev_subset=8,
            target_modules=("q_proj",),
            terms=(("likelihood", 1.0),),
            validation="likelihood",
        )
    )
    assert len(task.train) > 3000 and all(e.prompt == "" for e in task.train[:5])
    assert np.isfinite(task.validate(task.seed_genome()))


@pytest.mark.parametrize("layers,cache", [((5,), True), ((4, 5), True), (None, False)])
def test_batched_population_path_matches_the_sequential_path(tiny, data, layers, cache):

    seq = build_task(_spec(tiny, data, layers=layers, cache=cache))
    bat = build_task(respec(seq.spec, genomes_per_forward=2))
    genomes = [_genome(seq, seed=s) for s in range(3)]
    for (fa, ta), (fb, tb) in zip(seq.evaluate(genomes, 0), bat.evaluate(genomes, 0)):
        assert abs(fa - fb) < 1e-5
        # likelihood, KL (from the batched logits) and the generation terms (genome reloaded)
        for k in ta:
            assert abs(ta[k] - tb[k]) < 1e-5, k


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_cached_generation_equals_model_generate_prompt_by_prompt(tiny, data, batch_size):
    """Prompts of different lengths (BOS alone included), left-padded into batches and decoded with the
    model's cache (conv states + KV), give exactly the texts `model.generate` gives for each prompt alone."""
    task = build_task(_spec(tiny, data, batch_size=batch_size))
    ev = task.evaluator
    prompts = PROMPTS + [
        TextExample("A very long prompt that keeps going on and on about", ""),
        TextExample("Two", " dogs."),
        TextExample("Stocks", ""),
    ]
    enc = ev.encode(prompts)
    assert len({p.shape[1] for p in enc.prompts}) >= 4  # really different widths
    for seed in range(3):
        task.flat.write(_genome(task, seed=seed, scale=0.5))
        batched, alone = ev.generate(enc, 12), ev.generate_one_by_one(enc, 12)
        assert batched == alone
        assert any(batched) and len(set(batched)) > 1


@pytest.mark.parametrize("layers", [(5,), None])
def test_generation_batched_across_genomes_equals_each_genome_alone(tiny, data, layers):
    """The population path decodes P genomes together (prompts repeated genome-major, per-genome deltas in
    every cached step): each genome's texts equal its own `generate`, and the keyword term agrees."""

    seq = build_task(_spec(tiny, data, layers=layers, batch_size=3))
    bat = build_task(respec(seq.spec, genomes_per_forward=3))
    enc = seq.evaluator.encode(
        PROMPTS + [TextExample("Two", " dogs."), TextExample("A very long prompt about", "")]
    )
    genomes = [_genome(seq, seed=s, scale=0.5) for s in range(3)]
    n = seq.spec.fitness.max_new_tokens  # what the task's outputs generate
    together = bat.evaluator.generate_population(enc, n, bat._deltas, bat._stack(genomes))
    alone = []
    for g in genomes:
        seq.write(g)
        alone.append(seq.evaluator.generate(enc, n))
    assert together == alone
    assert len({tuple(t) for t in alone}) > 1  # the genomes really generate differently
    outs = bat._outputs_population(enc, genomes)
    assert [o.generations for o in outs] == alone


def test_prompt_words_split_sts_sentences_into_prompt_and_target(tiny):
    task = build_task(
        make_spec(
            base=str(tiny),
            kind="causal",
            train_path=str(STSB / "sts-train.csv"),
            dev_path=str(STSB / "sts-dev.csv"),
            train_genre="main-captions",
            dev_genre="main-captions",
            prompt_words=3,
            train_subset=8,
            dev_subset=8,
            target_modules=("q_proj",),
            terms=(("keyword", 1.0, {"keywords": ["guitar"]}),),
            validation="likelihood",
        )
    )
    ex = task.train[2]
    assert (ex.prompt, ex.target) == ("A man is", " playing a large flute.")
    assert all(len(e.prompt.split()) == 3 and e.target.startswith(" ") for e in task.train)
    assert 0.0 <= task.evaluate([task.seed_genome()], 0)[0][0] <= 1.0


def test_eva_init_on_the_hybrid_model_keeps_the_base_and_spans_orthogonal_input_directions(
    tiny, data
):
    """``lora.init: eva`` on LFM2 (attention, conv and feed-forward modules): every A is r orthogonal rows
    (principal directions of that module's input tokens on the train texts), B stays 0 so generation 0 is
    the base model, and two builds agree to the bit."""
    spec = _spec(tiny, data, init="eva", terms=(("likelihood", 1.0),))
    task = build_task(spec)
    seed = task.seed_genome()
    kaiming = build_task(respec(spec, init="kaiming")).seed_genome()
    for s in task.flat.layout:
        v = s.view(seed).astype(np.float64)
        if s.kind == "B":
            assert not v.any()
            continue
        gram = v @ v.T
        # orthogonal rows
        np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-6 * gram.max())
        assert not np.allclose(v, s.view(kaiming))
    with task.flat.base_only():
        base = float(task.val_term(task._outputs(task.dev)))
    assert task.validate(seed) == base
    assert build_task(spec).seed_genome().tobytes() == seed.tobytes()


def test_b_subspace_on_grouped_query_attention_reads_the_value_through_every_head_that_uses_it(
    tiny, data
):
    """LFM2's attention has 4 query heads on 2 KV heads: each value channel is read by two heads' columns of
    out_proj. ``lora.b_subspace`` stacks those column blocks, so B's columns lie in the top-k right singular span of
    the (2·hidden, KV·hd) stack; v_proj's B alone is reduced, and the seed is exactly the base model."""
    spec = _spec(tiny, data, target_modules=("q_proj", "v_proj"), terms=(("likelihood", 1.0),))
    free = build_task(spec)
    sub = build_task(respec(spec, b_subspace=4))
    assert np.array_equal(sub.genome.expand(sub.seed_genome()), free.seed_genome())
    by_key = {s.key: s for s in sub.layout}
    modules = dict(free.flat.model.named_modules())
    reduced = 0
    g = _genome(sub, scale=0.05)
    full = sub.genome.expand(g)
    for f in free.flat.layout:
        if not (f.kind == "B" and f.key.endswith("v_proj.lora_B.weight")):
            assert by_key[f.key].shape == f.shape
            continue
        reduced += 1
        attn = modules[f.key.split(".v_proj")[0]]
        # (hidden, heads·hd); out_proj is not adapted here
        w = attn.out_proj.weight.detach().double()
        width, hd = f.shape[0], attn.head_dim
        rep = w.shape[1] // width
        assert rep == 2
        stack = (
            w.reshape(w.shape[0], width // hd, rep, hd)
            .permute(2, 0, 1, 3)
            .reshape(rep * w.shape[0], width)
        )
        v = np.linalg.svd(stack.numpy(), full_matrices=False)[2][:4].T  # (width, 4)
        b = f.view(full).astype(np.float64)
        np.testing.assert_allclose(v @ v.T @ b, b, atol=1e-5)  # B's columns within the top-4 span
        assert by_key[f.key].shape == (4, 2)
    assert reduced == 2  # the two attention layers of the tiny LFM2


CHAT = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_a_chat_template_feeds_each_prompt_as_a_user_turn(tiny, data, tmp_path):
    """``fitness.chat_template``: the model reads what ``apply_chat_template`` gives for the prompt as a user
    turn (generation prompt added), and generates from it as stock ``model.generate`` does; a tokenizer
    without a template is refused naming the key."""
    import shutil

    from evolora.evolution.errors import ConfigError

    chat = tmp_path / "tiny-chat"
    shutil.copytree(tiny, chat)
    tok = AutoTokenizer.from_pretrained(chat)
    tok.chat_template = CHAT
    tok.save_pretrained(chat)
    task = build_task(
        _spec(chat, data, chat_template=True, terms=(("keyword", 1.0, {"regex": "a"}),))
    )
    ev = task.evaluator
    want = tok.apply_chat_template(
        [{"role": "user", "content": "The capital of France is"}], add_generation_prompt=True
    )
    want = list(want if isinstance(want, list) else want["input_ids"])
    assert ev.prompt_ids("The capital of France is") == want
    assert tok.decode(want).endswith("<|assistant|>")
    encoded = ev.encode(PROMPTS)
    assert ev.generate(encoded, 6) == ev.generate_one_by_one(encoded, 6)
    with pytest.raises(ConfigError, match="fitness.chat_template"):
        build_task(_spec(tiny, data, chat_template=True))


def test_stop_strings_end_each_continuation_before_the_first_of_them(tiny, data):
    free = build_task(_spec(tiny, data)).evaluator
    cut = build_task(_spec(tiny, data, stop=("e", "a"))).evaluator
    texts = free.generate(free.encode(PROMPTS), 6)
    want = [min((t[: t.find(s)] for s in "ea" if s in t), key=len, default=t) for t in texts]
    assert any(w != t for w, t in zip(want, texts))  # the stops occur: the cut is tested
    encoded = cut.encode(PROMPTS)
    assert cut.generate(encoded, 6) == cut.generate_one_by_one(encoded, 6) == want


SAMPLED = dict(temperature=1.0, top_p=0.9, completions=3)


def test_sampled_continuations_draw_the_same_numbers_for_a_stream_and_new_ones_for_another(
    tiny, data
):
    """Sampling (temperature, top-p, k completions a prompt): the same stream gives the same texts to the
    last character however the prompts are batched; another stream (another generation) other texts."""
    task = build_task(_spec(tiny, data, **SAMPLED))
    ev = task.evaluator
    enc = ev.encode(PROMPTS)
    first = ev.generate(enc, 6)
    assert len(first) == 3 * len(PROMPTS)
    assert ev.generate(enc, 6) == first == ev.generate_one_by_one(enc, 6)
    assert any(
        len(set(first[3 * i : 3 * i + 3])) > 1 for i in range(len(PROMPTS))
    )  # a group varies
    ev.stream = 7
    assert ev.generate(enc, 6) != first
    ev.stream = 0
    greedy = build_task(_spec(tiny, data)).evaluator
    assert greedy.generate(greedy.encode(PROMPTS), 6) != first[::3]


def test_every_genome_of_a_generation_is_scored_on_the_same_draws(tiny, data):
    """The population path under sampling: each genome's continuations equal its own, alone, on the same
    stream (common random numbers), and a group's examples reach the terms once per completion."""
    seq = build_task(_spec(tiny, data, batch_size=4, **SAMPLED))
    bat = build_task(respec(seq.spec, genomes_per_forward=3))
    enc = seq.evaluator.encode(PROMPTS)
    genomes = [_genome(seq, seed=s, scale=0.5) for s in range(3)]
    seq.evaluator.stream = bat.evaluator.stream = 4
    together = bat.evaluator.generate_population(enc, 6, bat._deltas, bat._stack(genomes))
    alone = []
    for g in genomes:
        seq.write(g)
        alone.append(seq.evaluator.generate(enc, 6))
    assert together == alone and len({tuple(t) for t in alone}) > 1
    out = bat._outputs_population(enc, genomes)[0]
    assert [e.prompt for e in out.generated_examples] == [
        p.prompt for p in PROMPTS for _ in range(3)
    ]
    a = seq.evaluate(genomes, 2)
    assert seq.evaluator.stream == 0 and a == seq.evaluate(genomes, 2) != seq.evaluate(genomes, 3)


def test_a_logged_model_cuts_its_continuations_as_the_run_did(tiny, data, tmp_path):
    """The MLflow model of a run with ``fitness.stop`` and a chat template continues each prompt as the
    task did: same template, same cut."""
    import shutil

    from evolora.fitness.serving import ServedModel, write_model_dir

    chat = tmp_path / "tiny-chat"
    shutil.copytree(tiny, chat)
    tok = AutoTokenizer.from_pretrained(chat)
    tok.chat_template = CHAT
    tok.save_pretrained(chat)
    task = build_task(_spec(chat, data, chat_template=True, stop=("e", "a")))
    genome = _genome(task, seed=1)
    task.write(genome)
    want = task.evaluator.generate(task.evaluator.encode(PROMPTS), 6)
    served = ServedModel(write_model_dir(task, genome, tmp_path / "model"))
    got = served.predict({"prompt": [p.prompt for p in PROMPTS]}, {"max_new_tokens": 6})
    free = build_task(_spec(chat, data, chat_template=True))
    free.write(genome)
    assert list(got) == want != free.evaluator.generate(free.evaluator.encode(PROMPTS), 6)
