"""Lineage: every birth (parents, operator, its parameters, the generator state before the draw), every
evaluation (fitness and terms) and every validation, appended to a JSON-lines file as the run goes (so a
resumed run keeps what came before its checkpoint) and converted to a columnar Parquet file at the end."""

from __future__ import annotations

import json
from pathlib import Path

from evolora.evolution.observers import Observer

__all__ = ["LineageRecorder", "to_parquet", "read_lineage", "ancestry", "format_ancestry"]

COLUMNS = (
    "event",
    "gen",
    "id",
    "parents",
    "op",
    "params",
    "rng",
    "fitness",
    "terms",
    "value",
    "guards",
    "excluded",
)


class LineageRecorder(Observer):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._buffer: list[dict] = []

    def on_start(self, info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        last = info["gen"]
        if last < 0 or not self.path.exists():
            self.path.write_text("")
            return
        # resumed: keep what the checkpoint covers, drop what a killed run wrote after it
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line and json.loads(line)["gen"] <= last
        ]
        self.path.write_text("".join(line + "\n" for line in kept))

    def on_events(self, events: list[dict]) -> None:
        self._buffer.extend(events)

    def on_checkpoint(self, state: dict) -> None:
        self.flush()

    def on_end(self, result) -> None:
        self.flush()

    def flush(self) -> None:
        if self._buffer:
            with self.path.open("a") as fh:
                for e in self._buffer:
                    fh.write(json.dumps(e, default=float) + "\n")
            self._buffer.clear()


def to_parquet(jsonl: str | Path, out: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in Path(jsonl).read_text().splitlines() if line]
    cols = {
        "event": pa.array([r["event"] for r in rows], pa.string()),
        "gen": pa.array([r["gen"] for r in rows], pa.int32()),
        "id": pa.array([r["id"] for r in rows], pa.int64()),
        "parents": pa.array([r.get("parents", []) for r in rows], pa.list_(pa.int64())),
        "op": pa.array([r.get("op") for r in rows], pa.string()),
        "params": pa.array(
            [json.dumps(r["params"]) if "params" in r else None for r in rows], pa.string()
        ),
        "rng": pa.array([r.get("rng") for r in rows], pa.string()),
        "fitness": pa.array([r.get("fitness") for r in rows], pa.float64()),
        "terms": pa.array(
            [json.dumps(r["terms"]) if "terms" in r else None for r in rows], pa.string()
        ),
        "value": pa.array([r.get("value") for r in rows], pa.float64()),
        "guards": pa.array(
            [json.dumps(r["guards"]) if "guards" in r else None for r in rows], pa.string()
        ),
        "excluded": pa.array([r.get("excluded") for r in rows], pa.string()),
    }
    pq.write_table(pa.table(cols), str(out), compression="zstd")
    return Path(out)


def read_lineage(path: str | Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(str(path)).to_pylist()


def ancestry(rows: list[dict], genome: int) -> list[dict]:
    """Birth events of ``genome`` and all its ancestors back to generation 0, newest first. Each carries its
    first evaluation's fitness (``fitness``), every evaluation (``evals``: gen, fitness, terms) and every
    validation (``validations``: gen, value, and in a budgeted study its guards and why it was excluded)."""
    births = {r["id"]: r for r in rows if r["event"] == "birth"}
    evals: dict[int, list[dict]] = {}
    vals: dict[int, list[dict]] = {}
    for r in rows:
        if r["event"] == "eval":
            terms = r.get("terms")
            evals.setdefault(r["id"], []).append(
                {
                    "gen": r["gen"],
                    "fitness": r["fitness"],
                    "terms": json.loads(terms) if isinstance(terms, str) else terms,
                }
            )
        elif r["event"] == "validation":
            guards = r.get("guards")
            vals.setdefault(r["id"], []).append(
                {
                    "gen": r["gen"],
                    "value": r["value"],
                    "guards": json.loads(guards) if isinstance(guards, str) else guards,
                    "excluded": r.get("excluded"),
                }
            )
    if genome not in births:
        raise KeyError(f"genome {genome} has no birth record")
    out, seen, todo = [], set(), [genome]
    while todo:
        gid = todo.pop(0)
        if gid in seen:
            continue
        seen.add(gid)
        b = dict(births[gid])
        b["evals"], b["validations"] = evals.get(gid, []), vals.get(gid, [])
        b["fitness"] = b["evals"][0]["fitness"] if b["evals"] else None
        out.append(b)
        todo.extend(p for p in b["parents"] if p not in seen)
    return sorted(out, key=lambda r: (-r["gen"], -r["id"]))


def format_ancestry(chain: list[dict]) -> list[str]:
    """An ancestry (:func:`ancestry`) as the lines ``evolora lineage`` prints: each genome's birth — operator,
    parents, fitness, params and the generator state before the draw — then its evaluations and validations."""
    out = [f"{'gen':>4} {'id':>6}  {'operator':<20} {'parents':<14} {'fitness':>10}  params"]
    for r in chain:
        fit = f"{r['fitness']:.5f}" if r["fitness"] is not None else "-"
        parents = ",".join(str(p) for p in r["parents"]) or "-"
        out.append(
            f"{r['gen']:>4} {r['id']:>6}  {r['op'] or '-':<20} {parents:<14} {fit:>10}  {r['params'] or ''}"
        )
        if r.get("rng"):
            out.append(f"{'':13}generator state before the draw: {r['rng']}")
        for e in r["evals"]:
            terms = ", ".join(f"{k} {v:.5f}" for k, v in (e["terms"] or {}).items())
            out.append(
                f"{'':13}evaluated at gen {e['gen']}: fitness {e['fitness']:.5f}"
                + (f" ({terms})" if terms else "")
            )
        for v in r["validations"]:
            guards = ", ".join(f"{k} {x:.5f}" for k, x in (v.get("guards") or {}).items())
            out.append(
                f"{'':13}validated at gen {v['gen']}: {v['value']:.5f}"
                + (f" ({guards})" if guards else "")
                + (f"; excluded by the budget: {v['excluded']}" if v.get("excluded") else "")
            )
    return out
