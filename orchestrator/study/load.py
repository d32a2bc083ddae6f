"""Study files: YAML (safe loader) → a validated :class:`~evolora.orchestrator.study.sections.StudyConfig`, with
``--set PATH=VALUE`` overrides; the search space is checked against it (:mod:`.space`).

Every error names the dotted config path and the bad value (``evolution.mutation_sigma: must be > 0, got
-0.1``) and is raised before anything is written anywhere.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from evolora.evolution.errors import ConfigError
from evolora.fitness import PACKAGED_STSB
from evolora.fitness.aliases import ALIASES
from evolora.orchestrator.study.paths import set_path, validation_error
from evolora.orchestrator.study.sections import StudyConfig
from evolora.orchestrator.study.space import check_search

__all__ = [
    "load_study",
    "load_raw",
    "parse_study",
    "apply_overrides",
    "validation_source",
    "DEFAULT_VAL_FRACTION",
]


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


# validation drawn from a user's own train data when the study names none
DEFAULT_VAL_FRACTION = 0.1
# the data section's keys that hold paths, relative to the study file
DATA_PATH_FIELDS = ("train_path", "dev_path", "test_path", "reference_path")


def _resolve_paths(raw: dict, base_dir: Path) -> dict:
    data = raw.get("data")
    if isinstance(data, dict):
        for field in DATA_PATH_FIELDS:
            if isinstance(data.get(field), str):
                data[field] = _usable(
                    f"data.{field}",
                    data[field],
                    lambda v: str((base_dir / Path(v).expanduser()).resolve()),
                )
        if data.get("dev_path") is None and data.get("val_fraction") is None:
            # validation is never a packaged stand-in for the user's data: the packaged sts-dev only beside the
            # packaged sts-train; a user's own train data gives up a fraction of itself
            if data.get("train_path") == str((PACKAGED_STSB / "sts-train.csv").resolve()):
                data["dev_path"] = str((PACKAGED_STSB / "sts-dev.csv").resolve())
            else:
                data["val_fraction"] = DEFAULT_VAL_FRACTION
    model = raw.get("model")
    if (
        isinstance(model, dict)
        and isinstance(model.get("base"), str)
        and model["base"] not in ALIASES
    ):

        def local(v: str) -> str:
            p = Path(v).expanduser()
            return (
                str((base_dir / p).resolve())
                if not p.is_absolute() and (base_dir / p).exists()
                else v
            )

        model["base"] = _usable("model.base", model["base"], local)
    return raw


def _usable(field: str, value: str, resolve) -> str:
    """A path from the study resolved, or a ConfigError naming the field when the system refuses it (a name
    too long, a NUL byte)."""
    try:
        return resolve(value)
    except (OSError, ValueError) as e:
        raise ConfigError(
            field, f"not a usable path ({getattr(e, 'strerror', None) or e})", value
        ) from None


def _merge(defaults: dict, raw: dict) -> dict:
    """The study's values over the defaults (so ``--set`` can reach a default list item); lists replace."""
    out = dict(defaults)
    for k, v in raw.items():
        out[k] = (
            _merge(defaults[k], v)
            if isinstance(v, dict) and isinstance(defaults.get(k), dict)
            else v
        )
    return out


def parse_study(
    raw: Any, base_dir: Path = Path("."), overrides: list[str] = (), seed: int | None = None
) -> StudyConfig:
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
        cfg = cfg.model_copy(
            update={"search": {k: v for k, v in cfg.search.items() if k not in pinned}}
        )
    check_search(cfg)
    return cfg


MAX_NODES = 100_000  # a study file is a few hundred nodes; aliases may not expand it past this


_CORE_SCALARS = [  # YAML 1.2's core schema: only these plain scalars are not strings
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),  # merge keys, as YAML 1.1 and PyYAML have them
]


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that run code), strict: a key twice in one mapping is an error (never a
    silent last-wins), and aliases may not expand the document past :data:`MAX_NODES` nodes (a "billion
    laughs" bomb is refused at once, before it is built).

    Plain scalars follow YAML 1.2's core schema, not PyYAML's YAML 1.1: only ``true``/``false`` are booleans
    (``yes``, ``no``, ``on``, ``off``, ``y``, ``n`` stay the strings the user wrote, so ``name: NO`` is the name
    "NO"), ``012`` is twelve (not octal ten), ``1:20`` and ``1_000`` are strings (not 80 and 1000), and ``1e-3``
    is a number."""

    yaml_implicit_resolvers: dict = {}

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        return int(text, 16) if text.startswith("0x") else int(text, 10)

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node).lower()
        if text.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        return float("nan") if text == ".nan" else float(text)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                m = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", m
                )
            seen.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None and _expanded_size(node) > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"expands to more than {MAX_NODES:,} nodes (aliases)", node.start_mark
            )
        return node


for _tag, _pattern, _first in _CORE_SCALARS:
    _StrictLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


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
        raise ConfigError(
            "<study>", f"{path}: not UTF-8 text (byte {e.start})", str(path)
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError("<study>", f"not valid YAML: {_short(e)}", str(path)) from None
    except RecursionError:
        raise ConfigError("<study>", "nested too deeply", str(path)) from None


def _short(e: yaml.YAMLError) -> str:
    """A YAML error in one line, without the offending text it may quote at length."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return (
        where
        + str(getattr(e, "problem", None) or getattr(e, "context", None) or e).splitlines()[0][:200]
    )


def validation_source(cfg: StudyConfig) -> str:
    """Where the study's validation split comes from, in one line a run prints before it starts."""
    d = cfg.data
    if d.val_fraction is None:
        return f"validation: {d.dev_path} (data.dev_path)"
    held = f", plus every train pair of {', '.join(d.val_sources)}" if d.val_sources else ""
    return (
        f"validation: {d.val_fraction:.0%} of the distinct examples of {d.train_path} (data.val_fraction, drawn "
        f"by data.seed{held}); they never reach a fitness batch"
    )


def shipped_or_file(path: str | Path) -> Path:
    """A study file's path; where no such file exists, the shipped study of that name (``quickstart``,
    ``lfm2-reward``: installed with evolora, usable from any directory); otherwise a ConfigError that lists
    the shipped ones."""
    from evolora.studies import names
    from evolora.studies import path as shipped

    p = Path(path)
    if p.is_file():
        return p
    if len(p.parts) == 1 or (len(p.parts) == 2 and p.parts[0] == "studies"):
        try:
            return shipped(p.name)
        except KeyError:
            pass
    raise ConfigError(
        "STUDY", f"study file not found (shipped studies, by name: {', '.join(names())})", str(path)
    )


def load_raw(path: str | Path) -> dict:
    p = shipped_or_file(path)
    raw = read_yaml(p)
    if raw is None:  # empty, or comments only: never a silent run of all defaults
        raise ConfigError("<study>", "study file is empty", str(path))
    return raw


def load_study(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> StudyConfig:
    return parse_study(load_raw(path), shipped_or_file(path).resolve().parent, overrides, seed)
