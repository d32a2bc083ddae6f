"""One task builder for every kind of model: the splits, the terms checked, the base model loaded, LoRA
attached (``lora.blocks`` included), the kind's evaluator, the task. What differs by kind — how the data
reads and which evaluator scores it — is one function each below; everything else is shared."""

from __future__ import annotations

import functools

import numpy as np

from evolora.evolution.errors import ConfigError
from evolora.fitness.causal import CausalEvaluator, load_texts
from evolora.fitness.causal_task import CausalTask
from evolora.fitness.encoder import EncoderEvaluator
from evolora.fitness.lora import FlatLoRA, attach_lora
from evolora.fitness.models import load_base, pick_device
from evolora.fitness.packed import PackedUnsupported
from evolora.fitness.pairs import load_pairs, score_range
from evolora.fitness.plugins import FITNESS_TERMS
from evolora.fitness.settings import FitnessSettings
from evolora.fitness.spec import TaskSpec, build_terms, check_lengths
from evolora.fitness.splits import load_splits
from evolora.fitness.tasks import PairTask

__all__ = ["build_task", "load_data"]


def build_task(spec: TaskSpec) -> PairTask | CausalTask:
    """Load the data and the base model, attach LoRA, build the evaluator and the task. ConfigError on bad
    input, before the model loads where the input alone shows it (data files, term names and params)."""
    causal = spec.model.kind == "causal"
    splits = load_data(spec)
    # built once, before the model loads
    terms = build_terms(spec, CausalTask.kind if causal else PairTask.kind)
    device = pick_device(spec.model.device)
    model, tok = load_base(spec.model.kind, spec.model.base, device)
    check_lengths(spec, model)
    peft_model = attach_lora(
        model,
        spec.lora.rank,
        spec.lora.alpha,
        spec.lora.target_modules,
        spec.lora.layers,
        spec.seed,
        blocks=spec.lora.blocks,
    )
    flat = FlatLoRA(peft_model, merged=spec.model.merge_weights)
    if causal:
        evaluator = CausalEvaluator(
            peft_model,
            tok,
            flat.adapted_layers,
            device,
            spec.data.batch_size,
            spec.data.max_length,
            spec.model.cache,
            generation=_check_chat_template(spec, tok),
            seed=spec.seed,
        )
        train, dev, test, reference = splits
        return CausalTask(spec, evaluator, flat, terms, train, dev, reference, test)
    train, dev, test = splits
    return PairTask(
        spec,
        _encoder_evaluator(spec, peft_model, tok, flat, device, train),
        flat,
        terms,
        train,
        dev,
        test,
    )


def _check_chat_template(spec: TaskSpec, tok) -> FitnessSettings:
    """The fitness section, ``fitness.chat_template`` on only where the base's tokenizer has a template."""
    if spec.fitness.chat_template and not getattr(tok, "chat_template", None):
        raise ConfigError(
            "fitness.chat_template",
            f"the tokenizer of {spec.model.base} has no chat template (set it to false: prompts are then "
            "fed as tokenizer(prompt))",
            True,
        )
    return spec.fitness


def load_data(spec: TaskSpec) -> tuple:
    """The task's data, every file read and checked (the one place a data file is checked: missing, empty, a
    missing column, a bad row, an unknown held-out source → ConfigError naming the field, the file, the row
    or column and the value). Pairs: (train, validation, test); texts: (train, validation, test, reference)."""
    return _text_splits(spec) if spec.model.kind == "causal" else _pair_splits(spec)


def _pair_splits(spec: TaskSpec):
    load = functools.partial(load_pairs, fmt=spec.data.format, columns=spec.data.columns)
    train, dev = load_splits(spec, load)
    test = load(spec.data.test_path, "data.test_path") if spec.data.test_path else None
    # the labels' scale: from the data, never assumed
    scale = score_range(
        [train, dev, *([test] if spec.data.score_range is not None and test is not None else [])],
        spec.data.score_range,
    )
    _check_correlation_defined(spec, dev)
    return (
        train.with_range(scale),
        dev.with_range(scale),
        test.with_range(scale) if test is not None else None,
    )


def _check_correlation_defined(spec: TaskSpec, dev) -> None:
    """A correlation metric (Spearman, Pearson) is undefined on a validation split of fewer than two pairs or
    with every score equal: refused here, before a model loads, naming the split."""
    if not getattr(FITNESS_TERMS.get(spec.validation), "correlation", False):
        return
    field, value = (
        ("data.val_fraction", spec.data.val_fraction)
        if spec.data.val_fraction is not None
        else ("data.dev_path", spec.data.dev_path)
    )
    if len(dev) < 2 or float(np.ptp(dev.gold)) == 0.0:
        why = f"{len(dev)} pair" if len(dev) < 2 else f"every score is {float(dev.gold[0]):g}"
        raise ConfigError(
            field,
            f"{spec.validation} is undefined on the validation split ({why}): nothing could "
            "be chosen",
            value,
        )


def _text_splits(spec: TaskSpec):
    load = functools.partial(
        load_texts,
        prompt_words=spec.data.prompt_words,
        fmt=spec.data.format,
        columns=spec.data.columns,
    )
    train, dev = load_splits(spec, load, train=(spec.data.train_genre,), dev=(spec.data.dev_genre,))
    test = (
        load(spec.data.test_path, "data.test_path", spec.data.test_genre or spec.data.dev_genre)
        if spec.data.test_path
        else None
    )
    reference = (
        load_texts(
            spec.data.reference_path,
            "data.reference_path",
            fmt=spec.data.format,
            columns=spec.data.columns,
        )
        if spec.data.reference_path
        else None
    )
    return train, dev, test, reference


def _encoder_evaluator(
    spec: TaskSpec, peft_model, tok, flat: FlatLoRA, device, train
) -> EncoderEvaluator:
    try:
        evaluator = EncoderEvaluator(
            peft_model,
            tok,
            flat.adapted_layers,
            device,
            spec.data.batch_size,
            spec.data.max_length,
            spec.model.cache,
            packed=spec.model.packed,
        )
    except PackedUnsupported as e:
        raise ConfigError("model.packed", str(e), spec.model.packed) from None
    if spec.model.trunk_memo:
        try:
            evaluator.memoise(train.s1 + train.s2)
        except ValueError as e:  # "auto": off where the model cannot serve it
            if spec.model.trunk_memo is True:
                raise ConfigError("model.trunk_memo", str(e), True) from None
    return evaluator
