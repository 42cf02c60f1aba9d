"""The code stays Python 3.9-compatible and lint-clean (ruff, vermin)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name):
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed: deploy/setup.sh --dev installs it")
    return path


def test_ruff_finds_nothing():
    result = subprocess.run(
        [_tool("ruff"), "check", "server", "tests"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_runs_on_python_3_9():
    result = subprocess.run(
        [
            _tool("vermin"),
            "--target=3.9-",
            "--violations",
            "--no-tips",
            "--eval-annotations",
            "--backport",
            "typing",
            "server",
            "tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
