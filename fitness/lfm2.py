"""Small LFM2 bases that evolora builds itself, offline, cached on disk.

* ``lfm2-tiny``: LiquidAI's hybrid architecture (conv, conv, attention, conv, conv, attention) at hidden
  size 128, randomly initialised from a fixed seed: for tests of the real code paths.
* ``lfm2-demo``: the same architecture pre-trained with ordinary gradient training for a few minutes on the
  *caption* sentences of the packaged STS-B train split, so that a demo study can adapt it by evolution to a
  domain it has not seen (news headlines) and show a real change in held-out likelihood.

Both get a byte-level BPE tokenizer (1,024 tokens) trained on the STS-B train sentences, and are saved as
ordinary Hugging Face directories (``AutoModelForCausalLM`` / ``AutoTokenizer`` load them; stock peft loads
adapters on them). Cache: ``$EVOLORA_CACHE`` or ``~/.cache/evolora``.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import torch

from evolora.fitness.pairs import PACKAGED_STSB

__all__ = [
    "tiny_config",
    "build_tokenizer",
    "build_tiny",
    "build_demo",
    "cache_dir",
    "sts_sentences",
    "BUILDERS",
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


def build_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sts_sentences(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        padding_side="right",
    )


def _save(model, tok, out: Path) -> Path:
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():  # another process finished first
        import shutil

        shutil.rmtree(tmp)
    else:
        os.replace(tmp, out)
    return out


def build_tiny(out: Path | None = None, seed: int = 0) -> Path:
    """The random-init tiny LFM2 (≈1.1M parameters) with its tokenizer, as a HF directory."""
    from transformers import Lfm2ForCausalLM

    out = Path(out or cache_dir() / "lfm2-tiny")
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Lfm2ForCausalLM(tiny_config(len(tok)))
    finally:
        torch.random.set_rng_state(state)
    return _save(model, tok, out)


def build_demo(out: Path | None = None, steps: int = 600, seed: int = 0, log=print) -> Path:
    """Pre-train the tiny LFM2 on caption sentences (gradient descent, AdamW), once, then cache it."""
    from transformers import Lfm2ForCausalLM

    out = Path(out or cache_dir() / "lfm2-demo")
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Lfm2ForCausalLM(tiny_config(len(tok))).train()
    texts = sts_sentences(genre="main-captions")
    ids = [[tok.bos_token_id, *tok(t)["input_ids"][:62], tok.eos_token_id] for t in texts]
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
        if step % 250 == 0 or step == steps - 1:
            log(
                f"lfm2-demo pre-training: step {step + 1}/{steps}, loss {loss.item():.3f}, {time.time() - t0:.0f}s"
            )
    return _save(model.eval(), tok, out)


BUILDERS = {"lfm2-tiny": build_tiny, "lfm2-demo": build_demo}
