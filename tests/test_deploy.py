"""The install scripts and systemd units pass their checkers; a dry run shows every step."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "deploy").glob("*.sh")) + [ROOT / ".ci" / "run"]
UNITS = sorted((ROOT / "deploy" / "systemd").iterdir())
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def test_shell_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (deploy/setup.sh --dev installs it)")
    result = subprocess.run(
        ["shellcheck", "-x", *map(str, SCRIPTS)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        pytest.skip("systemd-analyze is not installed (deploy/setup.sh --dev installs it)")
    # a root holding the units where the installers put them, and stand-ins for the programs
    # they start, so that verify checks the units themselves
    units_dir = tmp_path / "etc" / "systemd" / "system"
    units_dir.mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr" / "lib" / "systemd" / "system", symlinks=True)
    for program in (
        "opt/teachable-kiosk/.venv/bin/python",
        "opt/teachable-kiosk/deploy/healthcheck.sh",
        "usr/bin/cage",
        "usr/bin/chromium",
        "bin/sh",
    ):
        path = tmp_path / program
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    for unit in UNITS:
        shutil.copy(unit, units_dir)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            f"--root={tmp_path}",
            *(str(units_dir / u.name) for u in UNITS),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_server_unit_is_hardened_and_restarts():
    unit = (ROOT / "deploy" / "systemd" / "teachable.service").read_text()
    for line in (
        "Restart=always",
        "RestartSec=2",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/teachable",
        "PrivateTmp=yes",
    ):
        assert line in unit
    kiosk = (ROOT / "deploy" / "systemd" / "teachable-kiosk.service").read_text()
    for flag in (
        "--kiosk",
        "--noerrdialogs",
        "--disable-pinch",
        "--overscroll-history-navigation=0",
        "--hide-crash-restore-bubble",
        "--no-first-run",
        "--user-data-dir=/run/",
    ):
        assert flag in kiosk
    assert "--no-sandbox" not in kiosk


def test_cpu_install_dry_run_prints_every_step():
    env = dict(os.environ, DRY_RUN="1")
    result = subprocess.run(
        ["bash", "deploy/install-cpu.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    steps = [line for line in result.stdout.splitlines() if line.startswith("== ")]
    expected = [
        "checking Python",
        "installing system packages",
        "creating the service user",
        "installing the application",
        "creating the virtual environment",
        "fetching and verifying the models",
        "installing the systemd units",
        "starting the server directly",
        "waiting for the server",
    ]
    assert len(steps) == len(expected)
    for step, words in zip(steps, expected):
        assert words in step
    assert "apt-get install" in result.stdout
    assert "pip install --quiet --disable-pip-version-check -r" in result.stdout


def test_no_script_installs_pycoral_with_pip():
    for script in SCRIPTS:
        assert "pip install pycoral" not in script.read_text()


def test_dev_board_script_explains_what_to_use_instead():
    result = subprocess.run(
        ["bash", "deploy/install-devboard.sh"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "Python 3.7" in result.stdout and "install-rpi-coral-usb.sh" in result.stdout
