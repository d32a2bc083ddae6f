"""The codebase's habits, checked: ruff's lint rules and its formatter (both configured in pyproject.toml) pass
on every Python file of the repository."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    exe = Path(sys.executable).parent / "ruff"
    found = str(exe) if exe.is_file() else shutil.which("ruff")
    assert found, "ruff is not installed: `make setup` installs it (the dev extra pins it)"
    return [found]


def test_ruff_lint_passes():
    out = subprocess.run(
        [*_ruff(), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is():
    out = subprocess.run(
        [*_ruff(), "format", "--no-cache", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, "run `ruff format .`:\n" + out.stdout[-4000:] + out.stderr[-2000:]
