"""Data-only checkpoints: exact round trip of every kind of state, and refusal of anything else."""

import pickle
import random
import zipfile

import numpy as np
import pytest

from evolora.evolution.checkpoint import CheckpointError, load_checkpoint_file, save_checkpoint


def _state():
    rng = np.random.Generator(np.random.PCG64(7))
    rng.random(3)
    random.seed(3)
    return {
        "gen": 4,
        "python": random.getstate(),
        "numpy": rng.bit_generator.state,
        "genes": np.linspace(0, 1, 5, dtype=np.float32),
        "fitness": (0.5,),
        "nan": float("nan"),
        "species": {3: {"rep": np.ones(2), "best": np.float32(0.25)}},
        "none": None,
        "rows": [{"a": 1}],
    }


def test_round_trip_is_exact(tmp_path):
    s = _state()
    save_checkpoint(tmp_path / "c.npz", s)
    back = load_checkpoint_file(tmp_path / "c.npz")
    assert back["python"] == s["python"] and back["numpy"] == s["numpy"]
    assert back["genes"].dtype == np.float32 and back["genes"].tobytes() == s["genes"].tobytes()
    assert back["fitness"] == (0.5,) and np.isnan(back["nan"]) and back["none"] is None
    assert list(back["species"]) == [3] and back["species"][3]["best"].dtype == np.float32
    assert back["rows"] == [{"a": 1}]
    random.setstate(back["python"])  # a restored state is usable as such


def test_tampered_truncated_and_pickled_checkpoints_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _state())
    # change one array inside the archive, keep the recorded checksum
    with np.load(path) as z:
        files = {k: z[k] for k in z.files}
    files["a0"] = files["a0"] + 1
    np.savez(tmp_path / "t.npz", **files)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint_file(tmp_path / "t.npz")
    (tmp_path / "half.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint_file(tmp_path / "half.npz")
    # an object array (what a pickle payload inside an .npz looks like) is refused, never unpickled
    np.savez(
        tmp_path / "obj.npz",
        state_json=np.array([{"x": 1}], dtype=object),
        sha256=np.zeros(1, np.uint8),
    )
    with pytest.raises(CheckpointError):
        load_checkpoint_file(tmp_path / "obj.npz")
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"loop": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint_file(tmp_path / "p.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint_file(tmp_path / "empty.npz")


def test_unknown_objects_cannot_be_written(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c.npz", {"f": lambda: 0})
    assert not (tmp_path / "c.npz").exists()
