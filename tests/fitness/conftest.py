import pytest

from evolora.fitness.lfm2 import build_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny LFM2 (random init, the real hybrid architecture), built once for the fitness tests."""
    return build_tiny(tmp_path_factory.mktemp("models") / "lfm2-tiny")
