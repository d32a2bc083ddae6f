"""Installed, evolora is one namespace: the wheel holds ``evolora/`` and nothing else at the top of
site-packages (the repository's orchestrator/, fitness/, evolution/ and benchmarks/ become its sub-packages),
with the packaged STS-B data, the CLI and the entry points the CLI and MLflow find."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_puts_only_evolora_into_site_packages(tmp_path):
    src = tmp_path / "src"  # built from a copy: the checkout gets no build/ directory
    for name in ("evolora", "orchestrator", "evolution", "fitness", "benchmarks"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    out = subprocess.run(
        [*wheel, "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("evolora-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"evolora"}, tops
    for module in (
        "orchestrator/cli/commands.py",
        "orchestrator/run/trial.py",
        "fitness/serving.py",
        "evolution/loop.py",
        "benchmarks/cli.py",
        "fitness/data/stsbenchmark/sts-train.csv",
    ):
        assert f"evolora/{module}" in names, module
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(meta).decode()
    assert "evolora = evolora.orchestrator.cli:main" in entry_points
    assert "bench = evolora.benchmarks.cli" in entry_points
    assert "evolora = evolora.orchestrator.cli.uiapp:create_app" in entry_points
