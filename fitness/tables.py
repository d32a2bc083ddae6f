"""Data as users have it: local CSV, TSV, JSON lines (or a JSON list), Parquet, a Hugging Face ``datasets``
directory written by ``save_to_disk``, and STS-B files, read into rows with the study's column mapping.

Every problem with a file is a :class:`~evolora.evolution.errors.ConfigError` naming the study field, the file, the
row or column and the value — never a traceback — raised before a model is loaded.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolora.evolution.errors import ConfigError
from evolora.evolution.options import option

__all__ = [
    "FORMATS",
    "ENCODING",
    "Columns",
    "Table",
    "read_table",
    "detect_format",
    "data_path",
    "check_text",
]

FORMATS = ("auto", "stsb", "csv", "tsv", "jsonl", "parquet", "hf")
_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Columns:
    """Which column of the data holds what (null: the conventional name). Every other column reaches the
    fitness plug-ins under its own name."""

    sentence1: str | None = option(
        None, "pairs: first sentence (default column `sentence1`)", min_length=1
    )
    sentence2: str | None = option(
        None, "pairs: second sentence (default `sentence2`)", min_length=1
    )
    score: str | None = option(None, "pairs: gold similarity score (default `score`)", min_length=1)
    source: str | None = option(
        None,
        "pairs: where each pair comes from, for per-source "
        "figures and data.val_sources (default `source`, if the data has one)",
        min_length=1,
    )
    prompt: str | None = option(
        None, "causal: the prompt (default `prompt`, if present)", min_length=1
    )
    completion: str | None = option(
        None,
        "causal: the text scored by likelihood (default `completion`, else `target`, if present)",
        min_length=1,
    )
    answer: str | None = option(
        None,
        "causal: the expected answer, for exact_match and plug-ins (default `answer`, if present)",
        min_length=1,
    )

    def name(self, role: str, header: list[str]) -> str | None:
        """The column for ``role``: the mapped one, else the conventional name if the data has it."""
        mapped = getattr(self, role)
        if mapped is not None:
            return mapped
        for conventional in {"completion": ("completion", "target")}.get(role, (role,)):
            if conventional in header:
                return conventional
        return None


@dataclass
class Table:
    """Rows of one file as dicts, the column names, and how to name a row in a message."""

    path: Path
    field: str
    format: str
    header: list[str]
    rows: list[dict[str, Any]]
    line_of: list[int] | None = None  # text formats: each row's line in the file

    def where(self, i: int) -> str:
        line = f" (line {self.line_of[i]})" if self.line_of else ""
        return f"{self.path}: row {i + 1}{line}"

    def require(self, column: str, role: str) -> None:
        if column not in self.header:
            raise ConfigError(
                f"{self.field}",
                f"{self.path}: no column {column!r} for {role} (columns: "
                f"{', '.join(self.header) or 'none'}; map yours with data.columns.{role})",
                column,
            )

    def text(self, i: int, column: str) -> str:
        v = self.rows[i].get(column)
        if not isinstance(v, str):
            raise ConfigError(self.field, f"{self.where(i)}, column {column!r}: expected text", v)
        return v

    def number(self, i: int, column: str) -> float:
        v = self.rows[i].get(column)
        try:
            x = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            raise ConfigError(
                self.field, f"{self.where(i)}, column {column!r}: not a number", v
            ) from None
        if not math.isfinite(x):
            raise ConfigError(
                self.field, f"{self.where(i)}, column {column!r}: not a finite number", v
            )
        return x


# UTF-8, with or without the byte-order mark Excel writes at the start of a CSV
ENCODING = "utf-8-sig"


def data_path(path: str | Path, field: str) -> Path:
    """``path`` as a data file or directory that exists and can be read to its end: a FIFO, a device or a
    socket (read forever, or never) is refused at once, naming ``field``."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(field, "data file not found", str(path))
    if not (p.is_file() or p.is_dir()):
        raise ConfigError(
            field,
            "is not a regular file or directory (a FIFO, device or socket cannot be read as data)",
            str(path),
        )
    return p


def check_text(value: Any, field: str, where: str) -> None:
    """Every string in ``value`` (a JSON record: keys, values, nested) is text UTF-8 can write: a lone
    surrogate (``"\\ud800"`` in JSON) would fail deep inside a tokenizer, or in a log, much later."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ConfigError(
                field,
                f"{where}: holds a lone surrogate (U+{ord(value[e.start]):04X} at character "
                f"{e.start}), not text",
                value[:80].encode("utf-8", "backslashreplace").decode(),
            ) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, field, where)
            check_text(v, field, where)
    elif isinstance(value, list):
        for v in value:
            check_text(v, field, where)


def detect_format(path: Path) -> str:
    """A directory → ``hf``; by suffix otherwise; a ``.csv``/``.tsv`` file shaped like STS-B (no header,
    tab-separated, ≥ 7 columns, a number in column 5) → ``stsb``."""
    if path.is_dir():
        return "hf"
    fmt = _SUFFIX.get(path.suffix.lower())
    if fmt in ("csv", "tsv", None):
        try:
            with path.open(encoding=ENCODING, newline="") as fh:
                first = fh.readline().rstrip("\r\n").split("\t")
        except (UnicodeDecodeError, OSError):
            first = []
        if len(first) >= 7:
            try:
                float(first[4])
                return "stsb"
            except ValueError:
                pass
    if fmt is None:
        raise ConfigError(
            "data.format",
            f"cannot tell the format of {path} from its name; set data.format to one "
            f"of {', '.join(FORMATS[1:])}",
            "auto",
        )
    return fmt


def read_table(path: str | Path, field: str, fmt: str = "auto") -> Table:
    """The rows of a CSV / TSV (header row), JSON lines / JSON list, Parquet or ``save_to_disk`` file."""
    p = data_path(path, field)
    fmt = detect_format(p) if fmt == "auto" else fmt
    if fmt == "stsb":
        raise ValueError("STS-B files are read by fitness.pairs.load_sts")
    reader = {
        "csv": _delimited,
        "tsv": _delimited,
        "jsonl": _jsonl,
        "parquet": _parquet,
        "hf": _hf,
    }[fmt]
    if fmt != "hf" and not p.is_file():
        raise ConfigError(field, f"is a directory, not a {fmt} file", str(path))
    try:
        table = reader(p, field, fmt)
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"{p}: not UTF-8 text (byte {e.start})", str(path)) from None
    if not table.rows:
        raise ConfigError(field, f"{p}: no rows", str(path))
    return table


def _delimited(p: Path, field: str, fmt: str) -> Table:
    rows, lines = [], []
    with p.open(encoding=ENCODING, newline="") as fh:
        # TSV as TSV: a tab separates, a line ends a row, and quotes are characters (no quoting)
        reader = (
            csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            if fmt == "tsv"
            else csv.DictReader(fh, delimiter=",")
        )
        try:
            header = list(reader.fieldnames or [])
            for row in reader:
                if None in row:  # more fields than the header names
                    raise ConfigError(
                        field,
                        f"{p}: line {reader.line_num}: {len(header) + len(row[None])} fields, the "
                        f"header names {len(header)}",
                        row[None],
                    )
                if any(v is None for v in row.values()):
                    raise ConfigError(
                        field,
                        f"{p}: line {reader.line_num}: fewer fields than the header's "
                        f"{len(header)}",
                        [v for v in row.values() if v is not None],
                    )
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as e:
            raise ConfigError(
                field, f"{p}: line {reader.line_num}: malformed {fmt.upper()} ({e})", str(p)
            ) from None
    if len(set(header)) != len(header):
        raise ConfigError(field, f"{p}: the header names a column twice", header)
    return Table(p, field, fmt, header, rows, lines)


def _jsonl(p: Path, field: str, fmt: str) -> Table:
    text = p.read_text(encoding=ENCODING)
    if text.lstrip().startswith("["):  # a JSON list of records
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                field, f"{p}: not valid JSON (line {e.lineno}: {e.msg})", str(p)
            ) from None
        lines = None
    else:
        records, lines = [], []
        # lines end at \n only: U+2028 and the other separators str.splitlines() knows are text inside a string
        for i, line in enumerate(text.split("\n"), 1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise ConfigError(field, f"{p}: line {i} is not a JSON object", line[:80]) from None
            lines.append(i)
    for i, r in enumerate(records):
        where = f"line {lines[i]}" if lines else f"item {i + 1}"
        if not isinstance(r, dict):
            raise ConfigError(
                field, f"{p}: {where} is not a JSON object", r if not isinstance(r, str) else r[:80]
            )
        check_text(r, field, f"{p}: {where}")
    header = list(dict.fromkeys(k for r in records for k in r))
    return Table(p, field, "jsonl", header, records, lines)


def _parquet(p: Path, field: str, fmt: str) -> Table:
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(p)
    except Exception as e:  # pyarrow's own errors: not a Parquet file, truncated, …
        raise ConfigError(
            field, f"{p}: not a readable Parquet file ({type(e).__name__}: {e})", str(p)
        ) from None
    return Table(p, field, "parquet", list(t.column_names), t.to_pylist())


def _hf(p: Path, field: str, fmt: str) -> Table:
    """A ``datasets`` directory written by ``Dataset.save_to_disk`` (arrow files + JSON; nothing executed)."""
    if (p / "dataset_dict.json").is_file():
        splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        raise ConfigError(
            field,
            f"{p} holds a DatasetDict: point at one of its splits ({', '.join(str(p / s) for s in splits)})",
            str(p),
        )
    if not (p / "dataset_info.json").is_file() and not (p / "state.json").is_file():
        raise ConfigError(
            field, f"{p} is not a directory written by datasets' save_to_disk", str(p)
        )
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as e:
        raise ConfigError(
            field, f"{p}: datasets could not read it ({type(e).__name__}: {e})", str(p)
        ) from None
    return Table(p, field, "hf", list(ds.column_names), ds.to_list())
