"""Small LFM2 bases that evolora builds itself, offline, cached on disk.

* ``lfm2-tiny``: LiquidAI's hybrid architecture (conv, conv, attention, conv, conv, attention) at hidden
  size 128, randomly initialised from a fixed seed: for tests of the real code paths.
* ``lfm2-demo``: the same architecture pre-trained with ordinary gradient training for a few minutes on the
  *caption* sentences of the packaged STS-B train split, so that a demo study can adapt it by evolution to a
  domain it has not seen (news headlines) and show a real change in held-out likelihood.
* ``lfm2-arith``: the same architecture pre-trained on two-digit additions (:mod:`evolora.fitness.arithmetic`,
  never a problem of the packaged splits) from a corpus that mostly drops carries: it can carry, and mostly
  does not — a base a verifiable reward has room to improve.

The first two get a byte-level BPE tokenizer (1,024 tokens) trained on the STS-B train sentences; lfm2-arith
one with no merges (a token per character, so every number is spelled digit by digit). All are saved as
ordinary Hugging Face directories (``AutoModelForCausalLM`` / ``AutoTokenizer`` load them; stock peft loads
adapters on them). Cache: ``$EVOLORA_CACHE`` or ``~/.cache/evolora``.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import torch

from evolora.evolution.errors import EvoloraWarning
from evolora.fitness.pairs import PACKAGED_STSB

__all__ = [
    "tiny_config",
    "build_tokenizer",
    "build_tiny",
    "build_demo",
    "build_arith",
    "cache_dir",
    "sts_sentences",
    "weights_digest",
    "built_digest",
    "BUILDERS",
    "DIGESTS",
    "RECIPE",
]

LAYER_TYPES = ["conv", "conv", "full_attention", "conv", "conv", "full_attention"]


def cache_dir() -> Path:
    return Path(os.environ.get("EVOLORA_CACHE", Path.home() / ".cache" / "evolora"))


def sts_sentences(
    path: Path = PACKAGED_STSB / "sts-train.csv", genre: str | None = None
) -> list[str]:
    """Unique sentences of an STS-B file, optionally of one genre (main-captions, main-news, main-forums)."""
    out: dict[str, None] = {}
    with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is not part of the first genre
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if genre is None or row[0] == genre:
                out.setdefault(row[5].strip())
                out.setdefault(row[6].strip())
    return list(out)


def tiny_config(vocab_size: int = 1024, **over):
    from transformers import Lfm2Config

    kw = dict(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
        layer_types=list(LAYER_TYPES),
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    kw.update(over)
    return Lfm2Config(**kw)


def build_tokenizer(
    vocab_size: int = 1024, texts: list[str] | None = None, prefix_space: bool = True
):
    """A byte-level BPE on ``texts`` (default: the STS-B train sentences) that follows the Hugging Face
    convention: it adds its own special token (``<|bos|>`` first), so ``tokenizer(prompt)`` is what the model
    was trained to read. ``vocab_size`` 259 (the 256 bytes and three special tokens) learns no merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sts_sentences() if texts is None else texts, trainer)
    bos = ("<|bos|>", tok.token_to_id("<|bos|>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A $B", special_tokens=[bos]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        padding_side="right",
    )


# What a build is made of; a cached base of another recipe is never reused (its directory is another)
RECIPE = "r2"
# SHA-256 of each base's tensors and vocabulary as the reference build makes them (weights_digest): a build
# that differs (other torch kernels, another library's initialisation) is said, since every figure measured
# on that base rests on these bytes
DIGESTS = {
    "lfm2-tiny": "e962af208883953999fb5e109f30072cd719cd29b6dc7f704c7a9d6a369107dd",
    "lfm2-demo": "2bc3475f977468e0ae737e79222bc70d35f76425ef578ed68724f0b0f01f0ca9",
    "lfm2-arith": "24161529b99955ddbd46811031265a941a360971a58bc81663c6a1f25d37361a",
}
BUILD_FILE = "evolora-build.json"


def weights_digest(path: Path) -> str:
    """SHA-256 over a model directory's tensors (names, dtypes, shapes, bytes, in name order) and its
    tokenizer's vocabulary: the same on any machine for the same weights, whatever the file layout."""
    import hashlib
    import json

    from safetensors import safe_open
    from transformers import AutoTokenizer

    h = hashlib.sha256()
    with safe_open(str(Path(path) / "model.safetensors"), framework="pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    vocab = AutoTokenizer.from_pretrained(str(path)).get_vocab()
    h.update(json.dumps(sorted(vocab.items())).encode())
    return h.hexdigest()


def _init(model, seed: int) -> None:
    """Every weight drawn here, from one seeded generator in name order (not by the installed library's own
    initialisation, which may change between versions): matrices and convolutions N(0, 0.02²), norms' scales
    1, biases 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim > 1:
                p.normal_(0.0, 0.02, generator=g)
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)


class _OneThread:
    """A build runs on one torch thread whatever the caller's setting (the same sums in the same order)."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def _save(model, tok, out: Path, name: str) -> Path:
    import json
    import warnings

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    digest = weights_digest(tmp)
    (tmp / BUILD_FILE).write_text(json.dumps({"base": name, "recipe": RECIPE, "digest": digest}))
    if DIGESTS.get(name) and digest != DIGESTS[name]:
        warnings.warn(
            f"{name} built here differs from the reference build (sha256 {digest[:16]}…, reference "
            f"{DIGESTS[name][:16]}…): other torch kernels or versions; figures measured on {name} will "
            "differ here",
            EvoloraWarning,
            stacklevel=3,
        )
    if out.exists():  # another process finished first
        import shutil

        shutil.rmtree(tmp)
    else:
        os.replace(tmp, out)
    return out


def _cached(name: str, out: Path | None) -> Path:
    return Path(out or cache_dir() / f"{name}-{RECIPE}")


def built_digest(path: Path) -> str | None:
    """The digest a built base recorded when it was made (None: not a base evolora built)."""
    import json

    f = Path(path) / BUILD_FILE
    return json.loads(f.read_text()).get("digest") if f.is_file() else None


def build_tiny(out: Path | None = None, seed: int = 0) -> Path:
    """The random-init tiny LFM2 (≈1.1M parameters) with its tokenizer, as a HF directory."""
    from transformers import Lfm2ForCausalLM

    out = _cached("lfm2-tiny", out)
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    with _OneThread():
        model = Lfm2ForCausalLM(tiny_config(len(tok)))
        _init(model, seed)
    return _save(model.eval(), tok, out, "lfm2-tiny")


def build_demo(out: Path | None = None, steps: int = 600, seed: int = 0, log=print) -> Path:
    """Pre-train the tiny LFM2 on caption sentences (gradient descent, AdamW), once, then cache it."""
    captions = lambda: sts_sentences(genre="main-captions")  # noqa: E731
    return _build_pretrained(
        "lfm2-demo", out, captions, lambda _: build_tokenizer(), steps, seed, log
    )


def build_arith(out: Path | None = None, steps: int = 4000, seed: int = 0, log=print) -> Path:
    """Pre-train the tiny LFM2 on the 8,750 pre-training additions (``"37+45=72"``, the whole text scored,
    :func:`evolora.fitness.arithmetic.pretrain_texts`) for ``steps`` AdamW steps, once, then cache it."""
    from evolora.fitness.arithmetic import pretrain_texts

    def tokenizer(texts):  # every byte a token: numbers spelled digit by digit
        return build_tokenizer(259, texts, prefix_space=False)

    return _build_pretrained("lfm2-arith", out, pretrain_texts, tokenizer, steps, seed, log)


def _build_pretrained(name: str, out: Path | None, texts, tokenizer, steps: int, seed, log) -> Path:
    """A pre-trained base, built once and cached under ``name``: ``tokenizer(texts())``, then ``steps`` of
    :func:`_pretrain` on ``texts()``, on one thread."""
    from transformers import Lfm2ForCausalLM

    out = _cached(name, out)
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    corpus = texts()
    tok = tokenizer(corpus)
    with _OneThread():
        model = _pretrain(
            Lfm2ForCausalLM(tiny_config(len(tok))), tok, corpus, steps, seed, log, name
        )
    return _save(model.eval(), tok, out, name)


def _pretrain(model, tok, texts: list[str], steps: int, seed: int, log, name: str):
    _init(model, seed)
    model.train()
    g = torch.Generator().manual_seed(seed)
    # what the tokenizer gives (its <|bos|> first), cut to 63 tokens, then <|eos|>
    ids = [[*tok(t)["input_ids"][:63], tok.eos_token_id] for t in texts]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(ids), (32,), generator=g).tolist()
        batch = [ids[i] for i in idx]
        width = max(len(b) for b in batch)
        x = torch.full((len(batch), width), tok.pad_token_id)
        mask = torch.zeros_like(x)
        for r, b in enumerate(batch):
            x[r, : len(b)] = torch.tensor(b)
            mask[r, : len(b)] = 1
        labels = x.masked_fill(mask == 0, -100)
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 500 == 0 or step == steps - 1:
            log(
                f"{name} pre-training: step {step + 1}/{steps}, loss {loss.item():.3f}, {time.time() - t0:.0f}s"
            )
    return model


BUILDERS = {"lfm2-tiny": build_tiny, "lfm2-demo": build_demo, "lfm2-arith": build_arith}
