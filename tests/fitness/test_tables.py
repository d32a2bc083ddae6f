"""Data as users have it: every format loads the same pairs / texts as the equivalent STS-B / JSON lines file,
with the study's column mapping, and bad data is a one-line error naming the file, the row or column and
the value."""

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evolora.evolution.errors import ConfigError
from evolora.fitness import Columns, load_pairs, load_sts
from evolora.fitness.causal import TextExample, load_texts

from ..conftest import STSB, run_cli_in

N = 40


@pytest.fixture(scope="module")
def sts(tmp_path_factory):
    """The first N STS-B train pairs, as STS-B and as the same table with a user's column names."""
    d = tmp_path_factory.mktemp("sts")
    lines = (STSB / "sts-train.csv").read_text(encoding="utf-8").splitlines()[:N]
    (d / "sts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [r for r in csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)]
    table = [
        {"text_a": r[5], "text_b": r[6], "label": float(r[4]), "origin": r[1], "year": r[2]}
        for r in rows
    ]
    return d, table


def _write(d, fmt: str, table: list[dict]):
    if fmt in ("csv", "tsv"):
        p = d / f"pairs.{fmt}"
        with p.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(
                fh, fieldnames=list(table[0]), delimiter="," if fmt == "csv" else "\t"
            )
            w.writeheader()
            w.writerows(table)
        return p
    if fmt == "jsonl":
        p = d / "pairs.jsonl"
        p.write_text("\n".join(json.dumps(r) for r in table) + "\n", encoding="utf-8")
        return p
    if fmt == "json":
        p = d / "pairs.json"
        p.write_text(json.dumps(table, indent=1), encoding="utf-8")
        return p
    if fmt == "parquet":
        p = d / "pairs.parquet"
        pq.write_table(pa.Table.from_pylist(table), p)
        return p
    import datasets

    p = d / "pairs_hf"
    datasets.Dataset.from_list(table).save_to_disk(str(p))
    return p


MAP = Columns(sentence1="text_a", sentence2="text_b", score="label", source="origin")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet", "hf"])
def test_every_format_loads_the_same_pairs_as_the_sts_b_file(sts, tmp_path, fmt):
    d, table = sts
    ref = load_sts(d / "sts.csv", "data.train_path")
    got = load_pairs(_write(tmp_path, fmt, table), "data.train_path", "auto", MAP)
    assert got.s1 == ref.s1 and got.s2 == ref.s2 and got.source == ref.source
    np.testing.assert_array_equal(got.gold, ref.gold)
    assert got.columns == {
        "year": tuple(r["year"] for r in table)
    }  # the unmapped column, kept for plug-ins
    # auto tells STS-B by its shape
    assert load_pairs(d / "sts.csv", "data.train_path").s1 == ref.s1


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "hf"])
def test_every_format_loads_the_same_texts_as_the_json_lines_file(tmp_path, fmt):
    rows = [
        {"prompt": "A man is", "target": " playing.", "answer": "playing", "topic": "music"},
        {"prompt": "Stocks", "target": " fell.", "answer": None, "topic": "news"},
        {"prompt": "", "target": "Rain is coming.", "answer": "rain", "topic": "weather"},
    ]
    (tmp_path / "ref.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    ref = load_texts(tmp_path / "ref.jsonl", "data.train_path")
    assert ref[0] == TextExample("A man is", " playing.", "playing") and ref[0].extra == {
        "topic": "music"
    }
    user = [
        {"question": r["prompt"], "response": r["target"], "gold": r["answer"], "topic": r["topic"]}
        for r in rows
    ]
    if fmt == "csv":  # CSV has no null: an empty cell is an empty text
        user[1]["gold"] = None
    got = load_texts(
        _write(tmp_path, fmt, user),
        "data.train_path",
        columns=Columns(prompt="question", completion="response", answer="gold"),
    )
    assert [(e.prompt, e.target, e.answer or None, dict(e.extra)) for e in got] == [
        (e.prompt, e.target, e.answer, dict(e.extra)) for e in ref
    ]


def _bad(tmp_path, name: str, text: str | bytes):
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


@pytest.mark.parametrize(
    "name,content,columns,says",
    [
        (
            "a.csv",
            "text_a,text_b\nx,y\n",
            MAP,
            r"a\.csv: no column 'label' for score \(columns: text_a, text_b; map yours with data\.columns\.score\)",
        ),
        ("b.csv", "sentence1,sentence2,score\n", Columns(), r"b\.csv: no rows"),
        (
            "c.csv",
            "sentence1,sentence2,score\nx,y,high\n",
            Columns(),
            r"c\.csv: row 1 \(line 2\), column 'score': not a number, got 'high'",
        ),
        (
            "d.csv",
            "sentence1,sentence2,score\nx,y,1\nx,y,nan\n",
            Columns(),
            r"d\.csv: row 2 \(line 3\), column 'score': not a finite number, got 'nan'",
        ),
        (
            "e.csv",
            "sentence1,sentence2,score\nx,y,1,extra\n",
            Columns(),
            r"e\.csv: line 2: 4 fields, the header names 3",
        ),
        (
            "f.csv",
            "sentence1,sentence2,score\nx,y\n",
            Columns(),
            r"f\.csv: line 2: fewer fields than the header's 3",
        ),
        (
            "g.jsonl",
            '{"sentence1": "x", "sentence2": "y", "score": 1}\n[1, 2]\n',
            Columns(),
            r"g\.jsonl: line 2 is not a JSON object",
        ),
        (
            "h.jsonl",
            '{"sentence1": "x", "sentence2": 5, "score": 1}\n',
            Columns(),
            r"h\.jsonl: row 1 \(line 1\), column 'sentence2': expected text, got 5",
        ),
        (
            "i.csv",
            b"sentence1,sentence2,score\n\xff\xfe,y,1\n",
            Columns(),
            r"i\.csv: not UTF-8 text",
        ),
        ("j.tsv", b"\xff\xfeA\x00\t\x00", Columns(), r"j\.tsv: not UTF-8 text"),
        ("k.parquet", b"PAR1 not really", Columns(), r"k\.parquet: not a readable Parquet file"),
        ("l.txt", "sentence1,sentence2,score\n", Columns(), r"cannot tell the format of .*l\.txt"),
        (
            "m.csv",
            "a\tb\tc\td\tnan\tx\ty\n",
            Columns(),
            r"m\.csv: line 1: score \(column 5\) is outside STS-B's range \[0, 5\], got 'nan'",
        ),
        (
            "n.csv",
            "a\tb\tc\td\t7.5\tx\ty\n",
            Columns(),
            r"n\.csv: line 1: score \(column 5\) is outside STS-B's range \[0, 5\], got '7.5'",
        ),
    ],
)
def test_bad_pair_data_names_the_file_the_row_or_column_and_the_value(
    tmp_path, name, content, columns, says
):
    with pytest.raises(ConfigError, match=r"^data\.(train_path|format): .*" + says):
        load_pairs(_bad(tmp_path, name, content), "data.train_path", "auto", columns)


def test_a_dataset_dict_directory_asks_for_one_of_its_splits(tmp_path):
    import datasets

    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"prompt": "a"}]),
            "test": datasets.Dataset.from_list([{"prompt": "b"}]),
        }
    ).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(
        ConfigError,
        match=r"holds a DatasetDict: point at one of its splits \(.*dd/train, .*dd/test\)",
    ):
        load_texts(tmp_path / "dd", "data.train_path")
    assert [e.prompt for e in load_texts(tmp_path / "dd" / "test", "data.train_path")] == ["b"]


def test_bad_causal_data(tmp_path):
    p = _bad(tmp_path, "t.jsonl", '{"question": "a"}\n')
    with pytest.raises(
        ConfigError,
        match=r"t\.jsonl: needs a prompt or a completion/target column \(columns: question",
    ):
        load_texts(p, "data.train_path")
    p = _bad(tmp_path, "u.jsonl", '{"prompt": "a"}\n{"prompt": null}\n')
    with pytest.raises(
        ConfigError, match=r"u\.jsonl: row 2 \(line 2\): neither a prompt nor a completion"
    ):
        load_texts(p, "data.train_path")
    with pytest.raises(ConfigError, match=r"genres and prompt_words split STS-B files"):
        load_texts(
            _bad(tmp_path, "v.jsonl", '{"prompt": "a"}\n'), "data.train_path", genre="main-news"
        )


def test_a_run_on_bad_data_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "train.csv").write_text(
        "text_a,text_b,label\nA cat.,A dog.,4\nA car.,A bus.,lots\n"
    )
    (tmp_path / "s.yaml").write_text(
        "name: bad-data\ndata:\n  train_path: train.csv\n  val_fraction: 0.5\n"
        "  columns: {sentence1: text_a, sentence2: text_b, score: label}\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert run_cli_in(tmp_path, ["run", "s.yaml", "--no-progress", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "data.train_path:" in err[0]
        and "row 2 (line 3), column 'label': not a number, got 'lots'" in err[0]
    )
    assert not (tmp_path / "mlflow.db").exists()
