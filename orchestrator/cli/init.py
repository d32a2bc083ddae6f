"""``evolora init``: a study file to edit, written from a shipped one — its comments kept, its data paths
pointed at the installed package's data (they were relative to the shipped file), its name the new file's —
so a first study starts from one that runs, in any directory."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.load import DATA_PATH_FIELDS

__all__ = ["TEMPLATES", "cmd_init", "study_text"]

# --from: what a user starts from → the shipped study it copies
TEMPLATES = {"quickstart": "quickstart", "reward": "lfm2-reward", "pairs": "quickstart"}
PAIRS_ROWS = 600  # the sample pairs file: enough to run, small enough to read
_PATH_KEY = re.compile(rf"^(\s*)({'|'.join(DATA_PATH_FIELDS)}):(\s*)(\S+)(.*)$")


def study_text(
    source: Path, name: str, data_paths: dict[str, str | None] | None = None, origin: str = ""
) -> str:
    """The shipped study ``source`` as text for a new file: relative data paths made absolute (against the
    shipped file's folder), ``name:`` set to ``name``, ``data_paths`` replacing those keys' values, and a
    first line saying where it came from."""
    out = [
        f"# Written by `evolora init{origin}` from the shipped study {source.stem}; edit it freely."
    ]
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("name:"):
            line = f"name: {name}"
        elif m := _PATH_KEY.match(line):
            indent, key, gap, value, rest = m.groups()
            if data_paths is not None and key in data_paths:
                value = "null" if data_paths[key] is None else data_paths[key]
                rest = ""  # the shipped file's comment was about its own data
            elif value != "null" and not Path(value).is_absolute():
                value = str((source.parent / value).resolve())
            line = f"{indent}{key}:{gap}{value}{rest}"
        out.append(line)
    return "\n".join(out) + "\n"


def _pairs_sample(dst: Path) -> None:
    """``PAIRS_ROWS`` STS-B train pairs as a plain CSV (sentence1, sentence2, score): the shape of a user's
    own pairs file, to be replaced by theirs."""
    from evolora.fitness import PACKAGED_STSB

    with (
        open(PACKAGED_STSB / "sts-train.csv", encoding="utf-8") as f,
        open(dst, "w", newline="", encoding="utf-8") as out,
    ):
        w = csv.writer(out)
        w.writerow(["sentence1", "sentence2", "score"])
        for i, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if i == PAIRS_ROWS:
                break
            w.writerow([row[5], row[6], row[4]])


def cmd_init(args) -> int:
    from evolora.studies import names
    from evolora.studies import path as shipped

    source = TEMPLATES.get(args.source, args.source)
    if source not in names():
        raise ConfigError(
            "--from",
            f"one of {', '.join(TEMPLATES)} or a shipped study ({', '.join(names())})",
            args.source,
        )
    out = Path(args.out)
    pairs = out.parent / "pairs.csv" if args.source == "pairs" else None
    for f in (out, pairs):
        if f is not None and f.exists() and not args.force:
            raise ConfigError("--out", "exists; pass --force to overwrite it", str(f))
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", out.stem) or "my-study"
    paths = None
    if (
        pairs is not None
    ):  # the user's own pairs: validation from them, no test split until they name one
        paths = {
            "train_path": "pairs.csv  # your pairs: columns sentence1, sentence2, score",
            "dev_path": None,
            "test_path": None,
        }
    text = study_text(shipped(source), name, paths, f" --from {args.source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if pairs is not None:
        _pairs_sample(pairs)
    out.write_text(text, encoding="utf-8")
    print(
        f"wrote {out}"
        + (f" and {pairs} ({PAIRS_ROWS} sample pairs: put yours there)" if pairs else "")
    )
    print(f"edit it, then: evolora run {out}")
    return 0
