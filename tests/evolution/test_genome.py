import numpy as np
import pytest

from evolora.evolution import GenomeLayout


def layout():
    return GenomeLayout.from_shapes(
        {"l0.lora_A.weight": (2, 5), "l0.lora_B.weight": (5, 2), "l1.lora_A.weight": (3, 4)}
    )


def test_offsets_are_contiguous_and_sizes_add_up():
    lay = layout()
    assert [s.offset for s in lay] == [0, 10, 20]
    assert lay.size == 32
    assert [s.kind for s in lay] == ["A", "B", "A"]
    assert lay.mask("B").sum() == 10 and lay.mask("B")[10:20].all()


def test_round_trip_is_bit_equal():
    lay = layout()
    g = np.random.default_rng(0).standard_normal(lay.size).astype(np.float32)
    arrays = lay.to_arrays(g)
    assert arrays["l1.lora_A.weight"].shape == (3, 4)
    back = lay.from_arrays(arrays)
    assert back.tobytes() == g.tobytes()
    assert GenomeLayout.from_json(lay.to_json()) == lay


def test_wrong_shapes_are_rejected():
    lay = layout()
    with pytest.raises(ValueError, match="32 genes"):
        lay.to_arrays(np.zeros(31, np.float32))
    arrays = lay.to_arrays(np.zeros(32, np.float32))
    arrays["l0.lora_B.weight"] = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="l0.lora_B.weight"):
        lay.from_arrays(arrays)
