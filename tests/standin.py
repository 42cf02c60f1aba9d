"""Stand-in libedgetpu shared libraries, built with the C compiler at test time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent / "native" / "edgetpu_standin.c"
MODES = ("segv", "ill", "nodevice", "hang", "abort", "works")


def build(mode: str, folder: Path) -> Path:
    """Compiles the ``mode`` stand-in into ``folder/<mode>/libedgetpu.so.1``; returns its path.

    Skips the test when there is no C compiler (``deploy/setup.sh --dev`` installs one).
    """
    assert mode in MODES, mode
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in libedgetpu (deploy/setup.sh --dev)")
    out = folder / mode / "libedgetpu.so.1"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", f"-DSTANDIN_{mode.upper()}", f'-DSTANDIN_NAME="{mode}"']
        + ["-o", str(out), str(SOURCE)],
        check=True,
        capture_output=True,
    )
    return out
