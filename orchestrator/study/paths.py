"""Config paths: a study's values set by dotted path (``evolution.es.sigma``, ``fitness.terms.0.name``) and
validated as the file is, for ``--set`` overrides and a trial's sampled values; every settable path."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.sections import StudyConfig, resolved

__all__ = ["set_path", "with_values", "leaf_paths", "value_at", "validation_error"]


def validation_error(err: ValidationError) -> ConfigError:
    e = err.errors()[0]
    path = ".".join(str(x) for x in e["loc"]) or "<study>"
    msg = e["msg"].removeprefix("Value error, ")
    if isinstance(e.get("ctx", {}).get("error"), ConfigError):
        return e["ctx"]["error"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key" + _did_you_mean(e["loc"])
    return ConfigError(path, msg, e.get("input"))


def _did_you_mean(loc: tuple) -> str:
    """' (did you mean population?)' for a misspelt key, from the valid keys of its section."""
    import difflib

    model: Any = StudyConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        ann = field.annotation
        model = next(
            (
                a
                for a in (ann, *getattr(ann, "__args__", ()))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if model is None:
            return ""
    close = difflib.get_close_matches(
        str(loc[-1]), list(getattr(model, "model_fields", {})), n=1, cutoff=0.6
    )
    return f" (did you mean {close[0]}?)" if close else ""


def set_path(raw: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    node: Any = raw
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise ConfigError(path, f"no list item {k!r}")
            k = int(k)
        elif not isinstance(node, dict):
            raise ConfigError(path, f"{'.'.join(keys[:i])} is not a mapping")
        if last:
            node[k] = value
        else:
            if isinstance(node, dict) and k not in node:
                node[k] = {}
            node = node[k]


def leaf_paths(d: dict, prefix: str = "") -> set[str]:
    """Every settable path: mapping keys, whole lists, and fields of list items (``fitness.terms.0.weight``)."""
    out = set()
    for k, v in d.items():
        if isinstance(v, dict):
            out |= leaf_paths(v, f"{prefix}{k}.")
            continue
        out.add(f"{prefix}{k}")
        if isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    out |= leaf_paths(item, f"{prefix}{k}.{i}.")
    return out


def with_values(cfg: StudyConfig, values: dict[str, Any]) -> StudyConfig:
    """``cfg`` with config paths set to values (a trial's sampled params), validated like the file."""
    raw = resolved(cfg)
    for path, value in values.items():
        set_path(raw, path, value)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise validation_error(err) from None


def choice_label(choice: Any) -> Any:
    return (
        choice
        if choice is None or isinstance(choice, (str, int, float, bool))
        else json.dumps(choice)
    )


def value_at(conf: dict, path: str) -> Any:
    """The value at a dotted config path (list items by index) of a resolved config."""
    node: Any = conf
    for k in path.split("."):
        node = node[int(k)] if isinstance(node, list) else node[k]
    return node
