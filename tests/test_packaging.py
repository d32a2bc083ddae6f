"""Installed, evolora is one namespace: the wheel holds ``evolora/`` and nothing else at the top of
site-packages (the repository's orchestrator/, fitness/, evolution/ and benchmarks/ become its sub-packages),
with the packaged STS-B data, the CLI and the entry points the CLI and MLflow find."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_puts_only_evolora_into_site_packages(tmp_path):
    src = tmp_path / "src"  # built from a copy: the checkout gets no build/ directory
    for name in ("evolora", "orchestrator", "evolution", "fitness", "benchmarks", "studies"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "examples").mkdir()
    for f in (ROOT / "examples").glob("*.*"):
        shutil.copy(f, src / "examples" / f.name)
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
        "studies/quickstart.yaml",
        "studies/lfm2-reward.yaml",
        "examples/paraphrase-accuracy.yaml",
    ):
        assert f"evolora/{module}" in names, module
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(meta).decode()
    assert "evolora = evolora.orchestrator.cli:main" in entry_points
    assert "bench = evolora.benchmarks.cli" in entry_points
    assert "evolora = evolora.orchestrator.cli.uiapp:create_app" in entry_points

    # installed (the wheel unpacked on the path), a shipped study loads by name from an empty directory and
    # its data paths point into the installed package
    target, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
    out = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    code = (
        "import evolora, evolora.studies as s\n"
        "from evolora.orchestrator.study.load import load_study\n"
        "c = load_study('quickstart')\n"
        "print(evolora.__file__); print(c.data.train_path); print(len(s.names()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=empty,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    module, train, n = out.stdout.split()
    assert module.startswith(str(target)) and train.startswith(str(target)) and int(n) >= 10
    assert Path(train).is_file()
