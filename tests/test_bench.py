"""`evolora bench` runs every path on both models and reports what it says it reports (no speed asserted)."""

import json

import pytest

from evolora.orchestrator.cli.commands import main


@pytest.mark.slow
def test_bench_json_has_one_object_per_model_and_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--population",
                "2",
                "--batch",
                "8",
                "--repeats",
                "1",
                "--batched-chunk",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    keys = {
        "model",
        "path",
        "evals_per_s",
        "min",
        "max",
        "ratio_to_bound",
        "ratio_to_naive",
        "overhead_share",
        "threads",
        "peak_rss_mb",
    }
    gen = ("gen-bound", "gen-naive", "gen-one-by-one", "gen-batched", "gen-genomes")
    assert {(r["model"], r["path"]) for r in rows} == {
        (m, p)
        for m in ("minilm", "lfm2-tiny")
        for p in ("bound", "naive", "full", "layer-blocks", "cached-1", "cached-2", "batched")
    } | {("lfm2-tiny", p) for p in gen} | {
        ("minilm", "per-pair"),
        ("minilm", "per-pair-memo"),
        ("minilm", "padded"),
    }
    for r in rows:
        assert keys <= set(r)
        assert r["min"] <= r["evals_per_s"] <= r["max"] and r["evals_per_s"] > 0
        assert (r["overhead_share"] is None) == (r["path"] in ("bound", "naive", *gen))
        assert (r.get("tokens_per_s") is not None) == (r["path"] in gen)
    bound = {r["model"]: r["evals_per_s"] for r in rows if r["path"] == "bound"}
    gen_bound = next(r["evals_per_s"] for r in rows if r["path"] == "gen-bound")
    for r in rows:
        ref = gen_bound if r["path"] in gen else bound[r["model"]]
        assert abs(r["ratio_to_bound"] - r["evals_per_s"] / ref) < 0.01
    assert main(["bench", "--models", "gpt5"]) == 2


@pytest.mark.slow
def test_bench_actors_rows_and_the_es_bytes_do_not_grow_with_the_genome(tmp_path):
    """`evolora bench --actors 1,2 --tiny` on a real local Ray: every row, its fields, and what travels — the
    ES the same bytes per genome at rank 16 as at rank 4 (4× the genes), the GA its genomes."""
    out = tmp_path / "actors.json"
    assert main(["bench", "--actors", "1,2", "--tiny", "--threads", "1", "--json", str(out)]) == 0
    rows = {r["row"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["process", "ray-1", "ray-2", "ray-2 rank-16", "ray-2 ga"]
    for r in rows.values():
        assert {
            "actors",
            "threads_per_actor",
            "genes",
            "gen_s",
            "ratio",
            "bytes_per_genome",
            "genome_bytes",
        } <= set(r)
        assert r["gen_s"] > 0 and r["ratio"] > 0
    assert rows["process"]["bytes_per_genome"] == 0 and rows["process"]["ratio"] == 1
    small, big = rows["ray-2"], rows["ray-2 rank-16"]
    assert big["genes"] == 4 * small["genes"]
    assert big["bytes_per_genome"] < 1.1 * small["bytes_per_genome"] < small["genome_bytes"] / 10
    assert rows["ray-2 ga"]["bytes_per_genome"] > rows["ray-2 ga"]["genome_bytes"]
    assert main(["bench", "--actors", "0"]) == 2 and main(["bench", "--actors", "x,1"]) == 2
