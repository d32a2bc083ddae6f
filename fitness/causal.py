"""Causal language models: teacher-forced log-likelihood, greedy generation and KL to the frozen base,
with the frozen-trunk cache for LoRA on a top slice of layers.

For a hybrid model such as LFM2 every layer type gets its own mask, so the trunk pass records the extra
arguments of *every* layer from the first adapted one up (a full forward, once per batch) and the hidden
state entering the first adapted layer; each genome then runs the top layers, the final norm and the LM head.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessorList

from evolora.fitness.batched import repeat_batch
from evolora.fitness.sampling import draws
from evolora.fitness.settings import FitnessSettings
from evolora.fitness.texts import TextExample, load_texts
from evolora.fitness.trunk import TrunkCache

__all__ = ["TextExample", "EncodedTexts", "CausalEvaluator", "load_texts"]


@dataclass
class _Batch:
    rows: list[int]  # example indices
    input_ids: torch.Tensor  # (batch, seq), right-padded
    attention_mask: torch.Tensor  # (batch, seq)
    # (batch, seq-1): which next-token predictions are scored (target tokens)
    score_mask: torch.Tensor


@dataclass
class EncodedTexts:
    key: str
    examples: list[TextExample]
    batches: list[_Batch]
    prompts: list[torch.Tensor]  # per example: (1, prompt_len) ids for generation


class CausalEvaluator:
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        adapted_layers: list[int],
        device: torch.device,
        batch_size: int = 32,
        max_length: int = 128,
        cache: bool | str = "auto",
        cache_entries: int = 6,
        generation: FitnessSettings | None = None,
        seed: int = 0,
    ) -> None:
        self.model, self.tok, self.device = model, tokenizer, device
        # how prompts are fed and continuations drawn and cut (fitness.chat_template, temperature, top_p,
        # completions, stop), the draws seeded by the trial's seed
        self.generation, self.seed = generation or FitnessSettings(), seed
        # which draws a sampled continuation uses: 0 for the held-out splits, g + 1 while generation g is
        # scored (set by the task); every genome scored under one stream gets the same draws
        self.stream = 0
        self.batch_size, self.max_length = batch_size, max_length
        self.head = _head(model)
        self.trunk = TrunkCache(
            model,
            adapted_layers,
            cache,
            cache_entries,
            supported=self.head is not None,
            why=" and a known final norm",
        )
        self.layers, self.first = self.trunk.layers, self.trunk.first
        self.use_cache = self.trunk.enabled
        self._tokens: dict[str, list[int]] = {}  # text → token ids
        self._prompts: dict[str, list[int]] = {}  # prompt → token ids, special tokens included

    @property
    def trunk_computations(self) -> int:
        return self.trunk.computations

    # ---- data ------------------------------------------------------------------------------------
    def encode(self, examples: list[TextExample]) -> EncodedTexts:
        tok = self.tok
        seqs, starts, prompts = [], [], []
        for ex in examples:
            p = self.prompt_ids(ex.prompt)
            t = self._ids(ex.target)
            ids = (p + t)[: self.max_length]
            seqs.append(ids)
            starts.append(len(p))
            prompts.append(torch.tensor([p[: self.max_length]], device=self.device))
        order = np.argsort([len(s) for s in seqs], kind="stable")
        batches = []
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        for b in range(0, len(order), self.batch_size):
            rows = [int(i) for i in order[b : b + self.batch_size]]
            width = max(max(len(seqs[i]) for i in rows), 2)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            att = torch.zeros((len(rows), width), dtype=torch.long)
            score = torch.zeros((len(rows), width - 1), dtype=torch.bool)
            for r, i in enumerate(rows):
                s = seqs[i]
                ids[r, : len(s)] = torch.tensor(s)
                att[r, : len(s)] = 1
                score[r, max(starts[i], 1) - 1 : len(s) - 1] = True  # predictions of target tokens
            batches.append(
                _Batch(rows, ids.to(self.device), att.to(self.device), score.to(self.device))
            )
        key = hashlib.sha256(
            json.dumps([[e.prompt, e.target] for e in examples]).encode()
        ).hexdigest()
        return EncodedTexts(key, examples, batches, prompts)

    def _ids(self, text: str) -> list[int]:
        """Token ids of a text, tokenised once per evaluator (rotating batches reuse them)."""
        return self.token_ids(text)

    def prompt_ids(self, prompt: str) -> list[int]:
        """What ``tokenizer(prompt)`` gives, the tokenizer's own special tokens included (a BOS where it adds
        one): the model reads a prompt as a user's code would feed it. An empty prompt is those tokens alone.
        With ``fitness.chat_template``: the prompt as one user turn through the tokenizer's chat template, with the
        generation prompt (``apply_chat_template(..., add_generation_prompt=True)``), as a chat model is used."""
        if prompt not in self._prompts:
            if self.generation.chat_template:
                out = self.tok.apply_chat_template(
                    [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
                )
                ids = list(out if isinstance(out, list) else out["input_ids"])
            else:
                ids = self.tok(prompt)["input_ids"]
            self._prompts[prompt] = ids
        return self._prompts[prompt]

    def token_ids(self, text: str) -> list[int]:
        """Token ids of a text (no special tokens), tokenised once per evaluator."""
        if not text:
            return []
        if text not in self._tokens:
            self._tokens[text] = self.tok(text, add_special_tokens=False)["input_ids"]
        return self._tokens[text]

    # ---- teacher-forced -----------------------------------------------------------------------------
    @torch.inference_mode()
    def logits(self, data: EncodedTexts) -> list[torch.Tensor]:
        """Per batch: (batch, seq, vocab) logits of the current adapter."""
        trunk = self._trunk(data) if self.use_cache else None
        out = []
        for b, batch in enumerate(data.batches):
            if trunk is None:
                out.append(
                    self.model(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask,
                        use_cache=False,
                    ).logits
                )
            else:
                hidden, per_layer = trunk[b]
                for layer, (args, kwargs) in zip(self.layers[self.trunk.start :], per_layer):
                    hidden = layer(hidden, *args, **kwargs)
                    hidden = hidden[0] if isinstance(hidden, tuple) else hidden
                out.append(self.head(hidden))
        return out

    @torch.inference_mode()
    def logits_population(
        self, data: EncodedTexts, deltas, genomes: torch.Tensor
    ) -> list[list[torch.Tensor]]:
        """Per genome, per batch: logits for P genomes in one forward per batch (see :mod:`evolora.fitness.batched`)."""
        P = genomes.shape[0]
        trunk = self._trunk(data) if self.use_cache else None
        per_genome: list[list[torch.Tensor]] = [[] for _ in range(P)]
        with deltas.apply(genomes):
            for b, batch in enumerate(data.batches):
                nb = batch.input_ids.shape[0]
                if trunk is None:
                    lg = self.model(
                        input_ids=batch.input_ids.repeat(P, 1),
                        attention_mask=batch.attention_mask.repeat(P, 1),
                        use_cache=False,
                    ).logits
                else:
                    hidden, per_layer = trunk[b]
                    hidden = repeat_batch(hidden, P, nb)
                    for layer, (args, kwargs) in zip(self.layers[self.trunk.start :], per_layer):
                        hidden = layer(
                            hidden, *repeat_batch(args, P, nb), **repeat_batch(kwargs, P, nb)
                        )
                        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
                    lg = self.head(hidden)
                for p, chunk in enumerate(lg.view(P, nb, *lg.shape[1:])):
                    per_genome[p].append(chunk)
        return per_genome

    def mean_logprobs(
        self, data: EncodedTexts, logits: list[torch.Tensor] | None = None
    ) -> np.ndarray:
        """(examples,) mean log-probability of each example's target tokens (NaN if it has none)."""
        logits = logits if logits is not None else self.logits(data)
        res = np.full(len(data.examples), np.nan)
        for batch, lg in zip(data.batches, logits):
            m = batch.score_mask  # (batch, seq-1)
            rows = m.nonzero()[:, 0]  # (scored,) which example each scored position belongs to
            scored = lg[:, :-1][m]  # (scored, vocab): scored positions only
            target = scored.gather(-1, batch.input_ids[:, 1:][m][:, None]).squeeze(-1)  # (scored,)
            tok_lp = (
                target - torch.logsumexp(scored, dim=-1)
            ).double()  # log-softmax at the target only
            sums = torch.zeros(m.shape[0], dtype=torch.float64, device=lg.device).index_add_(
                0, rows, tok_lp
            )
            counts = m.sum(1)
            for r, i in enumerate(batch.rows):
                if counts[r] > 0:
                    res[i] = float(sums[r] / counts[r])
        return res

    def kl(
        self,
        data: EncodedTexts,
        base_logp: list[torch.Tensor],
        logits: list[torch.Tensor] | None = None,
    ) -> float:
        """Mean over real next-token positions of KL(adapted ‖ base)."""
        logits = logits if logits is not None else self.logits(data)
        total, count = 0.0, 0
        for batch, lg, blp in zip(data.batches, logits, base_logp):
            m = batch.attention_mask[:, 1:].bool()  # (batch, seq-1) real next-token positions
            lp = torch.log_softmax(lg[:, :-1][m].double(), dim=-1)  # (real, vocab)
            total += float((lp.exp() * (lp - blp)).sum())
            count += int(m.sum())
        return total / max(count, 1)

    def base_logprobs(self, data: EncodedTexts) -> list[torch.Tensor]:
        """The frozen base's log-probabilities at the real positions, per batch: (real, vocab)."""
        return [
            torch.log_softmax(lg[:, :-1][b.attention_mask[:, 1:].bool()].double(), dim=-1)
            for b, lg in zip(data.batches, self.logits(data))
        ]

    # ---- generation ---------------------------------------------------------------------------------
    def generate(self, data: EncodedTexts, max_new_tokens: int) -> list[str]:
        """Greedy decoding (deterministic) of every prompt, batched: prompts of similar length are left-padded
        to one width (``batch_size`` at a time), read in one forward, then decoded one cached step per new
        token for the whole batch (the model's cache: LFM2's conv states and attention KV). Padding is masked
        (LFM2's conv zeroes padded states), so each text equals what ``model.generate`` gives for its prompt
        alone (:meth:`generate_one_by_one`)."""
        return self._generate(data, max_new_tokens)[0]

    def generate_population(
        self, data: EncodedTexts, max_new_tokens: int, deltas, genomes: torch.Tensor
    ) -> list[list[str]]:
        """Per genome, :meth:`generate`'s texts, for P genomes decoded together: each batch of prompts is
        repeated once per genome (genome-major) and every cached decoding step runs all P adapters at once
        through the per-genome deltas (:mod:`evolora.fitness.batched`). Unlike the teacher-forced batched path this pays
        on a CPU too (bench `gen-genomes`: 3.96× the base model's own generation); equal texts, tested."""
        with deltas.apply(genomes) as P:
            return self._generate(data, max_new_tokens, P)

    @torch.inference_mode()
    def _generate(self, data: EncodedTexts, max_new_tokens: int, P: int = 1) -> list[list[str]]:
        """Per genome, a continuation of each (prompt, completion) row, prompt-major: ``completions`` rows a
        prompt, greedy or drawn (:mod:`evolora.fitness.sampling`)."""
        prompts = [p[0].tolist() for p in data.prompts]
        k = self.generation.completions
        texts = [[""] * (len(prompts) * k) for _ in range(P)]
        order = sorted(
            ((i, j) for i in range(len(prompts)) for j in range(k)),
            key=lambda r: len(prompts[r[0]]),
        )
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        for b in range(0, len(order), self.batch_size):
            rows = order[b : b + self.batch_size]
            width = max(len(prompts[i]) for i, _ in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            att = torch.zeros((len(rows), width), dtype=torch.long)
            for r, (i, _) in enumerate(rows):
                ids[r, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                att[r, width - len(prompts[i]) :] = 1
            out = self.model.generate(
                input_ids=ids.repeat(P, 1).to(self.device),
                attention_mask=att.repeat(P, 1).to(self.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList(
                    draws(self.generation, self.seed, self.stream, data.key, rows, P)
                ),
                pad_token_id=pad,
                eos_token_id=self.tok.eos_token_id,
            )
            for p in range(P):
                for r, (i, j) in enumerate(rows):
                    texts[p][i * k + j] = self._cut(
                        self.tok.decode(out[p * len(rows) + r, width:], skip_special_tokens=True)
                    )
        return texts

    def _cut(self, text: str) -> str:
        """A continuation up to the first of the stop strings (the stop string itself left out)."""
        ends = [i for i in (text.find(s) for s in self.generation.stop) if i >= 0]
        return text[: min(ends)] if ends else text

    @torch.inference_mode()
    def generate_one_by_one(self, data: EncodedTexts, max_new_tokens: int) -> list[str]:
        """Each (prompt, completion) alone with ``model.generate`` (no padding at all), on the same draws: the
        reference :meth:`generate` is tested and benchmarked against."""
        texts = []
        for i, p in enumerate(data.prompts):
            for j in range(self.generation.completions):
                out = self.model.generate(
                    input_ids=p,
                    attention_mask=torch.ones_like(p),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    logits_processor=LogitsProcessorList(
                        draws(self.generation, self.seed, self.stream, data.key, [(i, j)])
                    ),
                    pad_token_id=self.tok.pad_token_id,
                    eos_token_id=self.tok.eos_token_id,
                )
                texts.append(
                    self._cut(self.tok.decode(out[0, p.shape[1] :], skip_special_tokens=True))
                )
        return texts

    # ---- trunk cache --------------------------------------------------------------------------------
    def _trunk(self, data: EncodedTexts) -> list:
        return self.trunk.get(
            self.trunk.key(data.key), lambda: self._capture(data, self.trunk.start)
        )

    def _capture(self, data: EncodedTexts, start: int) -> list:
        """Per batch: the hidden state entering layer ``start`` and the own (args, kwargs) of every layer
        from ``start`` up."""
        captured: list = []
        current: dict = {}

        def grab(i):
            def hook(module, args, kwargs):
                if i == start:
                    current["hidden"] = args[0]
                current.setdefault("layers", []).append((tuple(args[1:]), dict(kwargs)))

            return hook

        handles = [
            self.layers[i].register_forward_pre_hook(grab(i), with_kwargs=True)
            for i in range(start, len(self.layers))
        ]
        try:
            with torch.inference_mode():
                for batch in data.batches:
                    current.clear()
                    self.model(
                        input_ids=batch.input_ids,
                        attention_mask=batch.attention_mask,
                        use_cache=False,
                    )
                    captured.append((current["hidden"], current["layers"]))
        finally:
            for h in handles:
                h.remove()
        return captured


def _head(model: torch.nn.Module):
    """hidden → logits after the last layer: the decoder's final norm, then the LM head (None if unknown)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, "model", None)
    norm = None
    for name in ("embedding_norm", "norm", "final_layernorm", "ln_f"):
        if decoder is not None and isinstance(getattr(decoder, name, None), torch.nn.Module):
            norm = getattr(decoder, name)
            break
    lm_head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if norm is None or lm_head is None:
        return None
    return lambda h: lm_head(norm(h))
