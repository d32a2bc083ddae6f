"""Study files: YAML (safe loader) → a validated :class:`~orchestrator.config.StudyConfig`, with
``--set PATH=VALUE`` overrides; the search space is checked against it (:mod:`.space`).

Every error names the dotted config path and the bad value (``evolution.mutation_sigma: must be > 0, got
-0.1``) and is raised before anything is written anywhere.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from evolution.errors import ConfigError
from fitness import PACKAGED_STSB
from fitness.aliases import ALIASES

from .config import StudyConfig
from .paths import set_path, validation_error
from .space import check_search

__all__ = ["load_study", "load_raw", "parse_study", "apply_overrides"]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``PATH=VALUE`` strings (VALUE parsed as YAML) to a raw study dict; returns a new dict."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError("--set", "expected PATH=VALUE", item)
        path, text = item.split("=", 1)
        try:
            value = yaml.load(text, Loader=_StrictLoader)
        except yaml.YAMLError:
            raise ConfigError(path, "value is not valid YAML", text) from None
        set_path(raw, path.strip(), value)
    return raw


def _resolve_paths(raw: dict, base_dir: Path) -> dict:
    data = raw.get("data")
    if isinstance(data, dict) and data.get("dev_path") is None and data.get("val_fraction") is None:
        data["dev_path"] = str(PACKAGED_STSB / "sts-dev.csv")  # the default validation file, made explicit
    if isinstance(data, dict):
        for field in ("train_path", "dev_path", "test_path", "reference_path"):
            if isinstance(data.get(field), str):
                data[field] = _usable(f"data.{field}", data[field], lambda v: str((base_dir / Path(v).expanduser()).resolve()))
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("base"), str) and model["base"] not in ALIASES:
        def local(v: str) -> str:
            p = Path(v).expanduser()
            return str((base_dir / p).resolve()) if not p.is_absolute() and (base_dir / p).exists() else v

        model["base"] = _usable("model.base", model["base"], local)
    return raw


def _usable(field: str, value: str, resolve) -> str:
    """A path from the study resolved, or a ConfigError naming the field when the system refuses it (a name
    too long, a NUL byte)."""
    try:
        return resolve(value)
    except (OSError, ValueError) as e:
        raise ConfigError(field, f"not a usable path ({getattr(e, 'strerror', None) or e})", value) from None


def _merge(defaults: dict, raw: dict) -> dict:
    """The study's values over the defaults (so ``--set`` can reach a default list item); lists replace."""
    out = dict(defaults)
    for k, v in raw.items():
        out[k] = _merge(defaults[k], v) if isinstance(v, dict) and isinstance(defaults.get(k), dict) else v
    return out


def parse_study(raw: Any, base_dir: Path = Path("."), overrides: list[str] = (), seed: int | None = None) -> StudyConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("<study>", "a study file must be a YAML mapping", type(raw).__name__)
    raw = apply_overrides(_merge(StudyConfig().model_dump(mode="json"), raw), list(overrides))
    if seed is not None:
        raw["seed"] = seed
    raw = _resolve_paths(raw, base_dir)
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise validation_error(err) from None
    pinned = {item.split("=", 1)[0].strip() for item in overrides}
    if pinned & set(cfg.search):  # a --set on a searched path fixes it
        cfg = cfg.model_copy(update={"search": {k: v for k, v in cfg.search.items() if k not in pinned}})
    check_search(cfg)
    return cfg


MAX_NODES = 100_000  # a study file is a few hundred nodes; aliases may not expand it past this


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that run code), strict: a key twice in one mapping is an error (never a
    silent last-wins), and aliases may not expand the document past :data:`MAX_NODES` nodes (a "billion
    laughs" bomb is refused at once, before it is built)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                m = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", m)
            seen.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None and _expanded_size(node) > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"expands to more than {MAX_NODES:,} nodes (aliases)",
                                              node.start_mark)
        return node


def _expanded_size(node, memo: dict | None = None) -> int:
    """Nodes of the document with every alias expanded (each shared node counted as often as it is reached),
    computed on the graph without expanding it."""
    memo = {} if memo is None else memo
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_NODES + 1  # a cycle through aliases counts as too large
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def read_yaml(path: Path):
    """A YAML file through the strict safe loader; errors name the file and the line."""
    try:
        with path.open(encoding="utf-8") as fh:  # the stream's name is the file's: errors say where
            return yaml.load(fh, Loader=_StrictLoader)
    except UnicodeDecodeError as e:
        raise ConfigError("<study>", f"{path}: not UTF-8 text (byte {e.start})", str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError("<study>", f"not valid YAML: {_short(e)}", str(path)) from None
    except RecursionError:
        raise ConfigError("<study>", "nested too deeply", str(path)) from None


def _short(e: yaml.YAMLError) -> str:
    """A YAML error in one line, without the offending text it may quote at length."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + str(getattr(e, "problem", None) or getattr(e, "context", None) or e).splitlines()[0][:200]


def load_raw(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("STUDY", "study file not found", str(path))
    raw = read_yaml(p)
    if raw is None:  # empty, or comments only: never a silent run of all defaults
        raise ConfigError("<study>", "study file is empty", str(path))
    return raw


def load_study(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> StudyConfig:
    return parse_study(load_raw(path), Path(path).resolve().parent, overrides, seed)
