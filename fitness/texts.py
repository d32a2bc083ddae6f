"""A causal task's data: examples (prompt, target, answer, the other columns) read from any table format or
from an STS-B file (a genre's sentences, optionally split into prompt and target)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolora.evolution.errors import ConfigError
from evolora.fitness.tables import Columns, data_path, detect_format, read_table

__all__ = ["TextExample", "load_texts"]


@dataclass(frozen=True)
class TextExample:
    prompt: str = ""  # conditioning text (not scored)
    target: str = ""  # scored by likelihood; empty for generation-only examples
    answer: str | None = None  # expected generation (exact match)
    # the data's other columns (plug-ins)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def columns(self) -> dict[str, Any]:
        """What a reward plug-in gets besides the prompt and completion: ``target`` and ``answer`` where this
        example has them, and every other column of its data under its own name."""
        out = {"target": self.target} if self.target else {}
        if self.answer is not None:
            out["answer"] = self.answer
        return {**out, **self.extra}


def load_texts(
    path: str | Path,
    field: str,
    genre: str | None = None,
    prompt_words: int | None = None,
    fmt: str = "auto",
    columns: Columns = Columns(),
) -> list[TextExample]:
    """Texts and prompts from any table :func:`evolora.fitness.data.read_table` reads — columns ``prompt``,
    ``completion`` (or ``target``) and ``answer`` as ``columns`` maps them, every other column kept for
    plug-ins — or from an STS-B file, whose sentences become targets (``genre`` filters its first column, e.g.
    ``main-news``), or with ``prompt_words`` = N, prompts (the first N words) and targets (the rest, with its
    leading space; sentences of ≤ N words are left out)."""
    from evolora.fitness.lfm2 import sts_sentences

    p = data_path(path, field)
    fmt = detect_format(p) if fmt == "auto" else fmt
    if fmt == "stsb":
        return _sts_texts(sts_sentences(p, genre), field, path, genre, prompt_words)
    if genre is not None or prompt_words is not None:
        raise ConfigError(
            field,
            f"genres and prompt_words split STS-B files; {p} is {fmt} (give it prompt and "
            "completion columns)",
            str(path),
        )
    return _table_texts(read_table(p, field, fmt), field, path, p, columns)


def _sts_texts(texts: list[str], field: str, path, genre, prompt_words) -> list[TextExample]:
    """An STS-B file's sentences as targets, or split into prompt (the first N words) and target."""
    if not texts:
        raise ConfigError(field, f"no sentences of genre {genre!r}", str(path))
    if prompt_words is None:
        return [TextExample(target=t) for t in texts]
    split = [t.split() for t in texts]
    return [
        TextExample(prompt=" ".join(w[:prompt_words]), target=" " + " ".join(w[prompt_words:]))
        for w in split
        if len(w) > prompt_words
    ]


def _table_texts(t, field: str, path, p: Path, columns: Columns) -> list[TextExample]:
    """A table's rows as examples: prompt, completion and answer by their mapped columns, the rest kept."""
    roles = {r: columns.name(r, t.header) for r in ("prompt", "completion", "answer")}
    for role, col in roles.items():
        if col is not None:
            t.require(col, role)
    if roles["prompt"] is None and roles["completion"] is None:
        raise ConfigError(
            field,
            f"{p}: needs a prompt or a completion/target column (columns: "
            f"{', '.join(t.header)}; map yours with data.columns)",
            str(path),
        )
    used = set(roles.values())
    out = []
    for i, row in enumerate(t.rows):
        text = {
            r: (t.text(i, c) if c is not None and row.get(c) is not None else None)
            for r, c in roles.items()
            if r != "answer"
        }
        answer = row.get(roles["answer"]) if roles["answer"] is not None else None
        if text["prompt"] is None and text["completion"] is None:
            raise ConfigError(field, f"{t.where(i)}: neither a prompt nor a completion", row)
        out.append(
            TextExample(
                text["prompt"] or "",
                text["completion"] or "",
                None if answer is None else str(answer),
                {k: v for k, v in row.items() if k not in used},
            )
        )
    return out
