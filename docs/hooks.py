"""MkDocs hook: the API pages document ``evolora.fitness``, ``evolora.evolution``, … as installed, where the
repository keeps ``fitness/``, ``evolution/``, … at its top. Before a build, ``.docs-src/evolora`` is laid out
as the installed package is (links to the repository's folders) for mkdocstrings to read."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (
    "orchestrator",
    "evolution",
    "fitness",
    "benchmarks",
    "studies",
    "examples",
)  # evolora.<folder>


def _lay_out() -> None:
    pkg = ROOT / ".docs-src" / "evolora"
    pkg.mkdir(parents=True, exist_ok=True)
    for src in [*(ROOT / "evolora").glob("*.py"), *(ROOT / f for f in FOLDERS)]:
        link = pkg / src.name
        if not link.is_symlink():
            link.symlink_to(src)


_lay_out()  # when MkDocs loads its hooks: before mkdocstrings reads its paths
