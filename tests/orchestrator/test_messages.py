"""Every message the Ray room writes or reads is declared in ``distributed/messages.py``: each dict literal
with an ``op`` is its request's declaration, one with a ``status`` a reply's, one with a ``mode`` a chunk's,
the actor's answer a ChunkAnswer, and every key read from a message is a key some declaration has."""

import ast
import typing
from pathlib import Path

from evolora.orchestrator.distributed import messages as m

ROOM = Path(__file__).resolve().parents[2] / "orchestrator" / "distributed"
FILES = ("driver.py", "pool.py", "actor.py")
REPLIES = (m.StartReply, m.WaitReply, m.ReplaceReply, m.PidsReply)


def _keys(cls) -> set[str]:
    return set(typing.get_type_hints(cls))


def _literals(path: Path):
    """(line, {key: constant value or None}) of every dict literal whose keys are strings (``**`` skipped)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict) and node.keys:
            keys = [k for k in node.keys if k is not None]
            if keys and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
                yield (
                    node.lineno,
                    {
                        k.value: (v.value if isinstance(v, ast.Constant) else None)
                        for k, v in zip(node.keys, node.values)
                        if k is not None
                    },
                )


def _declaration(d: dict):
    if "op" in d:
        return m.REQUESTS[d["op"]]
    if "status" in d:
        return next(c for c in REPLIES if "status" in _keys(c) and set(d) <= _keys(c))
    if "mode" in d or {"gen", "lo", "hi"} <= set(d):
        return m.ChunkMessage
    if "digests" in d:
        return m.ChunkAnswer
    return None


def test_every_message_written_is_declared():
    checked = 0
    for name in FILES:
        for line, d in _literals(ROOM / name):
            cls = _declaration(d)
            if cls is None:
                continue
            assert set(d) <= _keys(cls), (
                f"{name}:{line}: {set(d) - _keys(cls)} not in {cls.__name__}"
            )
            checked += 1
    assert checked >= 12, (
        checked
    )  # start, score, wait, replace, pids, close; the replies; chunks; answers


def test_every_key_read_from_a_message_is_declared():
    declared = set().union(
        *(_keys(c) for c in (*m.REQUESTS.values(), *REPLIES, m.ChunkMessage, m.ChunkAnswer))
    )
    read = {
        (name, node.lineno, node.slice.value)
        for name in FILES
        for node in ast.walk(ast.parse((ROOM / name).read_text()))
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("req", "reply", "m", "start", "out")
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    }
    assert len(read) >= 15
    stray = [r for r in read if r[2] not in declared]
    assert not stray, stray


def test_the_check_sees_a_stray_key():
    assert not {"op", "colour"} <= _keys(m.WaitRequest)
    assert _declaration({"op": "wait"}) is m.WaitRequest
    assert _declaration({"status": "ok", "token": 1, "answer": None}) is m.WaitReply
