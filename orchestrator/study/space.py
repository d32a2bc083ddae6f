"""The search space against the config it searches: every entry on an existing path, valid bounds, each
extreme value valid under the conditions it is sampled in, and the file's own values (``sweep.baseline``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.paths import choice_label, leaf_paths, value_at, with_values
from evolora.orchestrator.study.sections import StudyConfig, resolved

__all__ = ["check_search", "baseline_params"]


def check_search(cfg: StudyConfig) -> None:
    """Every search entry: valid bounds, an existing config path, and each extreme value valid there."""
    leaves = leaf_paths({k: v for k, v in resolved(cfg).items() if k not in ("search", "sweep")})
    order = list(cfg.search)
    for i, (path, spec) in enumerate(cfg.search.items()):
        if path not in leaves:
            raise ConfigError(f"search.{path}", "not a config path", path)
        spec.check(path)
        _check_path_choices(path, spec)
        for cond, accepted in (spec.when or {}).items():
            if cond not in leaves:
                raise ConfigError(f"search.{path}.when", "not a config path", cond)
            if not accepted:
                raise ConfigError(
                    f"search.{path}.when.{cond}", "must list at least one value", accepted
                )
            if cond in cfg.search and order.index(cond) >= i:
                raise ConfigError(
                    f"search.{path}.when",
                    "a condition on a searched path must come after that "
                    "path in `search` (entries are sampled in file order)",
                    cond,
                )
        context = _where_sampled(cfg, path)
        for v in spec.extremes():
            try:
                with_values(cfg, {**context, path: v})
            except ConfigError as e:
                raise ConfigError(f"search.{path}", f"contains an invalid value: {e}") from None
    if cfg.sweep.baseline:
        baseline_params(cfg)


def _is_path_field(path: str) -> bool:
    return path.startswith("data.") and path.endswith("_path") or path == "model.base"


def _check_path_choices(path: str, spec) -> None:
    """A file path among a search entry's choices is absolute: the study file's own paths are resolved from its
    directory when it loads, but a sampled value reaches a trial as it is written, in whatever directory (or host)
    the trial runs."""
    if spec.type != "categorical" or not _is_path_field(path):
        return
    for c in spec.choices:
        if (
            isinstance(c, str)
            and ("/" in c or path != "model.base")
            and not Path(c).expanduser().is_absolute()
        ):
            raise ConfigError(
                f"search.{path}.choices",
                "a path among the choices must be absolute (sampled "
                "values are not resolved from the study file's directory)",
                c,
            )


def _where_sampled(cfg: StudyConfig, path: str) -> dict[str, Any]:
    """Config values under which the search entry at ``path`` is sampled: its conditions' first accepted
    values, and theirs in turn (a condition on a conditional entry)."""
    out: dict[str, Any] = {}
    todo = [path]
    while todo:
        spec = cfg.search.get(todo.pop())
        for c, accepted in (spec.when or {}).items() if spec else ():
            if c not in out:
                out[c] = accepted[0]
                todo.append(c)
    return out


def baseline_params(cfg: StudyConfig) -> dict[str, Any]:
    """The file's own values of the searched paths, as Optuna params (categorical values as their labels):
    the trial ``sweep.baseline`` enqueues first. Entries whose ``when`` does not hold under the file's values
    are left out, as a sampled trial leaves them out. A value outside its entry's range or choices is a
    ConfigError naming ``search.<path>``."""
    fixed = resolved(cfg)
    out: dict[str, Any] = {}
    for path, spec in cfg.search.items():
        if not all(value_at(fixed, c) in accepted for c, accepted in (spec.when or {}).items()):
            continue
        v = value_at(fixed, path)
        if spec.type == "categorical":
            labels = [choice_label(c) for c in spec.choices]
            if choice_label(v) not in labels:
                raise ConfigError(
                    f"search.{path}",
                    f"sweep.baseline runs the file's value, which is not among "
                    f"the choices {spec.choices}",
                    v,
                )
            out[path] = choice_label(v)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not spec.low <= v <= spec.high:
            raise ConfigError(
                f"search.{path}",
                f"sweep.baseline runs the file's value, which is outside "
                f"[{spec.low:g}, {spec.high:g}]",
                v,
            )
        if (
            spec.step is not None
            and abs((v - spec.low) / spec.step - round((v - spec.low) / spec.step)) > 1e-9
        ):
            raise ConfigError(
                f"search.{path}",
                f"sweep.baseline runs the file's value, which is not on the "
                f"grid low + k × step ({spec.low:g} + k × {spec.step:g})",
                v,
            )
        out[path] = int(v) if spec.type == "int" else float(v)
    return out
