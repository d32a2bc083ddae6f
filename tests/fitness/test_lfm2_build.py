"""The bases evolora builds itself (lfm2-tiny, lfm2-demo): their tokenizer follows the Hugging Face convention,
and they build to the same bytes under any torch thread count — the bytes every figure on them rests on,
recorded in ``fitness.lfm2.DIGESTS`` and checked here."""

import json
import os
import subprocess
import sys

import pytest

from evolora.fitness.lfm2 import (
    BUILD_FILE,
    DIGESTS,
    RECIPE,
    build_tiny,
    build_tokenizer,
    built_digest,
    weights_digest,
)

BUILD = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from evolora.fitness.lfm2 import BUILDERS, weights_digest
print(weights_digest(BUILDERS[sys.argv[2]]()), torch.get_num_threads())
"""


def _build(tmp_path, base: str, threads: int) -> str:
    """Build ``base`` in a fresh process (its own cache) at ``threads`` torch threads → its digest."""
    env = {**os.environ, "EVOLORA_CACHE": str(tmp_path / f"cache-{threads}"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", BUILD, str(threads), base],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    digest, after = out.stdout.split()[-2:]
    assert int(after) == threads  # the build ran on one thread and gave the caller's setting back
    return digest


def test_the_tokenizer_adds_its_own_bos_as_hugging_face_tokenizers_do():
    tok = build_tokenizer()
    ids = tok("A man is")["input_ids"]
    assert (
        ids[0] == tok.bos_token_id
        and ids[1:] == tok("A man is", add_special_tokens=False)["input_ids"]
    )
    assert tok("")["input_ids"] == [tok.bos_token_id]


def test_lfm2_tiny_builds_to_the_reference_bytes_under_one_and_two_threads(tmp_path):
    one, two = _build(tmp_path, "lfm2-tiny", 1), _build(tmp_path, "lfm2-tiny", 2)
    assert one == two == DIGESTS["lfm2-tiny"]
    built = tmp_path / "cache-1" / f"lfm2-tiny-{RECIPE}"
    assert built_digest(built) == weights_digest(built) == one
    assert json.loads((built / BUILD_FILE).read_text())["recipe"] == RECIPE


@pytest.mark.slow
def test_lfm2_demo_builds_to_the_reference_bytes_under_two_threads(tmp_path):
    """The demo base is pre-trained (600 AdamW steps); the reference digest was taken at one thread."""
    assert _build(tmp_path, "lfm2-demo", 2) == DIGESTS["lfm2-demo"]


def test_a_base_cached_by_another_recipe_is_never_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path))
    stale = tmp_path / "lfm2-tiny"  # where an earlier evolora cached it, built another way
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    built = build_tiny()
    assert built == tmp_path / f"lfm2-tiny-{RECIPE}" and built_digest(built) == DIGESTS["lfm2-tiny"]


def test_a_build_that_differs_from_the_reference_is_said(tmp_path, monkeypatch):
    import evolora.fitness.lfm2 as lfm2

    monkeypatch.setitem(lfm2.DIGESTS, "lfm2-tiny", "0" * 64)
    with pytest.warns(UserWarning, match="differs from the reference build"):
        build_tiny(tmp_path / "tiny")


def test_a_model_on_a_built_base_names_its_bytes_and_refuses_another_build(tmp_path, monkeypatch):
    from evolora.evolution.errors import ConfigError
    from evolora.fitness.serving import base_reference, resolve_reference

    monkeypatch.setenv("EVOLORA_CACHE", str(tmp_path))
    ref = base_reference("lfm2-tiny")
    assert ref == {"alias": "lfm2-tiny", "digest": DIGESTS["lfm2-tiny"]}
    assert resolve_reference(ref) == "lfm2-tiny"
    other = {**ref, "digest": "f" * 64}  # a model evolved on a base built to other bytes
    with pytest.raises(ConfigError, match="base.digest"):
        resolve_reference(other)
