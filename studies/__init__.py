"""The study files evolora ships, installed with it as ``evolora.studies`` (package data): a command or a
script names one by its name (``evolora run quickstart``, ``evolora.run("lfm2-reward")``) from any directory,
and ``evolora init`` copies one to edit. Their data paths are relative to the file and point into the installed
package's own data, so they run as they are wherever evolora is installed."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["names", "path"]

_PACKAGES = (
    "evolora.studies",
    "evolora.examples",
)  # the shipped studies, then the plug-in examples'


def _files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in _PACKAGES:
        try:
            root = files(pkg)
        except ModuleNotFoundError:  # the examples are not installed with every build
            continue
        for f in sorted(root.iterdir(), key=lambda f: f.name):
            if f.name.endswith(".yaml"):
                out.setdefault(f.name.removesuffix(".yaml"), Path(str(f)))
    return out


def names() -> list[str]:
    """The shipped studies' names (the file names without ``.yaml``)."""
    return list(_files())


def path(name: str) -> Path:
    """The installed file of the shipped study ``name`` (``"quickstart"`` or ``"quickstart.yaml"``)."""
    found = _files().get(str(name).removesuffix(".yaml"))
    if found is None:
        raise KeyError(f"no shipped study {name!r}; shipped: {', '.join(names())}")
    return found
