"""The install scripts and systemd units pass their checkers; a dry run shows every step."""

import hashlib
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


# ---- The Edge TPU installers (deploy/edgetpu-pins.sh, lib.sh, install-edgetpu.sh) ----

PINS_FILE = ROOT / "deploy" / "edgetpu-pins.sh"
LIB = ROOT / "deploy" / "lib.sh"
OS_RELEASES = {
    "bookworm": ("debian", "Debian GNU/Linux 12 (bookworm)"),
    "trixie": ("debian", "Debian GNU/Linux 13 (trixie)"),
    "jammy": ("ubuntu", "Ubuntu 22.04.5 LTS"),
    "noble": ("ubuntu", "Ubuntu 24.04.3 LTS"),
    "bullseye": ("debian", "Debian GNU/Linux 11 (bullseye)"),
}
# (codename, uname -m, python3's tag, the libedgetpu asset suffix): what the installers support
TARGETS = [
    ("bookworm", "aarch64", "cp311", "bookworm"),
    ("bookworm", "x86_64", "cp311", "bookworm"),
    ("trixie", "aarch64", "cp313", "trixie"),
    ("trixie", "x86_64", "cp313", "trixie"),
    ("jammy", "x86_64", "cp310", "ubuntu22.04"),
    ("jammy", "aarch64", "cp310", "ubuntu22.04"),
    ("noble", "x86_64", "cp312", "ubuntu24.04"),
    ("noble", "aarch64", "cp312", "ubuntu24.04"),
]
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def read_pins(path=PINS_FILE):
    """{(kind, key): (sha256, url)} from the pin file's edgetpu_pin lines."""
    pins = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "edgetpu_pin":
            assert len(fields) == 5, line
            pins[(fields[1], fields[2])] = (fields[3], fields[4])
    return pins


def os_release(tmp_path, codename):
    distro, pretty = OS_RELEASES.get(codename, ("fedora", "Fedora Linux 41"))
    path = tmp_path / f"os-release-{codename}"
    path.write_text(
        f'PRETTY_NAME="{pretty}"\nID={distro}\nVERSION_CODENAME={codename}\nVERSION_ID="x"\n'
    )
    return path


def dry_run(script, tmp_path, codename, machine, tag, *args, path_dir=None):
    env = dict(
        os.environ,
        DRY_RUN="1",
        OS_RELEASE=str(os_release(tmp_path, codename)),
        ARCH=machine,
        PYTHON_TAG=tag,
        KERNEL_RELEASE="6.12.48+deb13-amd64",
    )
    env.pop("EDGETPU_ACCEL", None)
    env.pop("TRUST_UNPINNED", None)
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["bash", f"deploy/{script}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stub(tmp_path, name, body):
    """A stand-in program on PATH (lspci, dpkg-query) for the dry runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text("#!/bin/sh\n" + body)
    program.chmod(0o755)
    return bin_dir


def steps_of(stdout):
    return [line for line in stdout.splitlines() if line.startswith("== ")]


def assert_pinned_edge_tpu_install(result, suffix, machine, tag, flavor="std"):
    assert result.returncode == 0, result.stderr
    out = result.stdout
    pins = read_pins()
    deb_url = pins[(f"libedgetpu-{flavor}", f"{suffix}-{DEB_ARCH[machine]}")][1]
    assert f"+ download {deb_url} -> " in out
    assert "packages.cloud.google.com" not in out + result.stderr
    for line in out.splitlines():
        if line.startswith("+ ") and " apt-get install " in line:
            # the runtime comes only as the pinned .deb file, never by name from an apt repository
            assert not {"libedgetpu1-std", "libedgetpu1-max", "gasket-dkms"} & set(line.split())
    if tag == "cp313":
        assert "no tflite_runtime wheel is pinned for Python cp313" in out
        assert "edgetpu-constraints.txt" not in out
        assert "tflite_runtime-2.17.1" not in out
    else:
        wheel_url = pins[("tflite-runtime", f"{tag}-{machine}")][1]
        assert f"+ download {wheel_url} -> " in out
        assert (
            f"-r /opt/teachable-kiosk/requirements.txt -c {ROOT}/deploy/edgetpu-constraints.txt"
            in out
        )
    # the doctor's probe is the last step, after the server answered
    steps = steps_of(out)
    assert "waiting for the server" in steps[-2]
    assert steps[-1] == "== checking the Edge TPU: python -m server.doctor --probe-edgetpu"
    last_step = out[out.index(steps[-1]) :]
    assert "/opt/teachable-kiosk/.venv/bin/python -m server.doctor --probe-edgetpu" in last_step


def test_pi_installer_dry_run_installs_the_pinned_pairing_and_ends_with_the_probe(tmp_path):
    result = dry_run("install-rpi-coral-usb.sh", tmp_path, "bookworm", "aarch64", "cp311")
    assert_pinned_edge_tpu_install(result, "bookworm", "aarch64", "cp311")
    assert "gasket" not in result.stdout
    assert "chromium cage" in result.stdout


def test_pi_installer_max_frequency_takes_the_max_build(tmp_path):
    result = dry_run(
        "install-rpi-coral-usb.sh", tmp_path, "bookworm", "aarch64", "cp311", "--max-frequency"
    )
    assert_pinned_edge_tpu_install(result, "bookworm", "aarch64", "cp311", flavor="max")
    assert "libedgetpu1-std" not in result.stdout


def test_pi_installer_points_other_systems_to_install_edgetpu(tmp_path):
    result = dry_run("install-rpi-coral-usb.sh", tmp_path, "noble", "x86_64", "cp312")
    assert result.returncode == 1
    assert "deploy/install-edgetpu.sh" in result.stderr and "Nothing was changed" in result.stderr
    assert "+ " not in result.stdout


@pytest.mark.parametrize("accelerator", ["--usb", "--pcie"])
@pytest.mark.parametrize(("codename", "machine", "tag", "suffix"), TARGETS)
def test_edgetpu_installer_dry_run_per_supported_system(
    tmp_path, codename, machine, tag, suffix, accelerator
):
    kiosk = ["--no-kiosk"] if codename in ("jammy", "noble") else []
    result = dry_run("install-edgetpu.sh", tmp_path, codename, machine, tag, accelerator, *kiosk)
    assert_pinned_edge_tpu_install(result, suffix, machine, tag)
    assert ("chromium cage" in result.stdout) == (not kiosk)
    gasket_url = read_pins()[("gasket-dkms", "all")][1]
    if accelerator == "--pcie":
        out = result.stdout
        assert f"+ download {gasket_url} -> " in out
        assert "linux-headers-6.12.48+deb13-amd64" in out
        assert "+ modprobe apex" in out
        # the apex rule and group, before the service user needs them
        assert "65-apex.rules" in out and "+ usermod -a -G apex teachable" in out
    else:
        assert gasket_url not in result.stdout


def test_edgetpu_installer_finds_a_pcie_accelerator_with_lspci(tmp_path):
    bin_dir = stub(
        tmp_path,
        "lspci",
        '[ "$1 $2 $3" = "-n -d 1ac1:089a" ] && echo "03:00.0 0880: 1ac1:089a"\n',
    )
    result = dry_run(
        "install-edgetpu.sh", tmp_path, "bookworm", "x86_64", "cp311", path_dir=bin_dir
    )
    assert_pinned_edge_tpu_install(result, "bookworm", "x86_64", "cp311")
    assert "an M.2 / Mini PCIe Edge TPU" in result.stdout
    assert "+ modprobe apex" in result.stdout


def test_coral_apt_libedgetpu_16_is_replaced(tmp_path):
    bin_dir = stub(
        tmp_path,
        "dpkg-query",
        'for a; do pkg=$a; done\n[ "$pkg" = libedgetpu1-std ] && echo "installed 16.0" && exit 0\n'
        "exit 1\n",
    )
    result = dry_run(
        "install-rpi-coral-usb.sh", tmp_path, "bookworm", "aarch64", "cp311", path_dir=bin_dir
    )
    assert_pinned_edge_tpu_install(result, "bookworm", "aarch64", "cp311")
    assert "libedgetpu1-std 16.0 is Coral's apt build" in result.stdout
    assert "apt-get remove -y -qq libedgetpu1-std" in result.stdout


def test_a_rerun_keeps_the_pinned_libedgetpu_that_is_installed(tmp_path):
    bin_dir = stub(
        tmp_path,
        "dpkg-query",
        'for a; do pkg=$a; done\n[ "$pkg" = libedgetpu1-std ] && echo "installed 16.0tf2.17.1-1"'
        " && exit 0\nexit 1\n",
    )
    result = dry_run(
        "install-edgetpu.sh", tmp_path, "noble", "x86_64", "cp312", "--no-kiosk", path_dir=bin_dir
    )
    assert result.returncode == 0, result.stderr
    assert "libedgetpu1-std 16.0tf2.17.1-1 is installed" in result.stdout
    assert "libedgetpu1-std_16.0tf2.17.1-1" not in result.stdout  # nothing downloaded
    assert "apt-get remove" not in result.stdout


@pytest.mark.parametrize(
    ("codename", "machine", "tag"),
    [
        ("fedora", "x86_64", "cp313"),
        ("bullseye", "aarch64", "cp39"),
        ("bookworm", "armv7l", "cp311"),
    ],
)
def test_unsupported_system_gets_the_supported_list(tmp_path, codename, machine, tag):
    result = dry_run("install-edgetpu.sh", tmp_path, codename, machine, tag)
    assert result.returncode == 1
    message = result.stderr
    assert "no Edge TPU runtime is pinned for" in message
    for supported in ("Debian 12 bookworm", "Debian 13 trixie", "Ubuntu 22.04 jammy"):
        assert supported in message
    assert "noble     amd64  Python cp312" in message
    assert "Nothing was changed" in message and "install-cpu.sh" in message
    assert "+ " not in result.stdout


def test_a_python_without_a_pinned_wheel_gets_a_precise_message(tmp_path):
    result = dry_run("install-edgetpu.sh", tmp_path, "bookworm", "x86_64", "cp312")
    assert result.returncode == 1
    assert "for Python cp311" in result.stderr and "python3 here is cp312" in result.stderr
    assert "+ " not in result.stdout


def test_ubuntu_kiosk_needs_no_kiosk_flag(tmp_path):
    result = dry_run("install-edgetpu.sh", tmp_path, "jammy", "x86_64", "cp310", "--usb")
    assert result.returncode == 1
    assert "--no-kiosk" in result.stderr and "Nothing was changed" in result.stderr
    assert "+ " not in result.stdout


def test_installers_refuse_unknown_flags(tmp_path):
    result = dry_run("install-rpi-coral-usb.sh", tmp_path, "bookworm", "aarch64", "cp311", "--pcie")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_pin_file_pins_every_supported_system():
    pins = read_pins()
    targets = set()
    for line in PINS_FILE.read_text().splitlines():
        fields = line.split("#")[0].split()
        if fields and fields[0] == "edgetpu_target":
            targets.add(tuple(fields[1:]))
    python = {"cp313": "none"}
    assert targets == {
        (codename, DEB_ARCH[machine], python.get(tag, tag), suffix)
        for codename, machine, tag, suffix in TARGETS
    }
    for _codename, machine, tag, suffix in TARGETS:
        for flavor in ("std", "max"):
            assert (f"libedgetpu-{flavor}", f"{suffix}-{DEB_ARCH[machine]}") in pins
        if tag != "cp313":
            assert ("tflite-runtime", f"{tag}-{machine}") in pins
    assert ("gasket-dkms", "all") in pins
    text = PINS_FILE.read_text()
    for (kind, _key), (sha, url) in pins.items():
        assert sha == "unknown" or (len(sha) == 64 and set(sha) <= set("0123456789abcdef"))
        assert url.startswith("https://github.com/")
        if kind.startswith("libedgetpu"):
            assert "16.0TF2.17.1-1/" in url and "_16.0tf2.17.1-1." in url
        if kind == "tflite-runtime":
            assert "/tflite_runtime-2.17.1-" in url
    assert "EDGETPU_LIBEDGETPU_VERSION=16.0tf2.17.1-1" in text
    assert "EDGETPU_TFLITE_VERSION=2.17.1" in text
    # what is known about Python 3.13 / trixie is written down
    assert "cp313" in text and "trixie" in text


def test_no_script_uses_corals_apt_repository():
    for script in SCRIPTS:
        assert "packages.cloud.google.com" not in script.read_text(), script


def test_constraints_keep_numpy_1_for_the_tflite_runtime_wheel():
    lines = (ROOT / "deploy" / "edgetpu-constraints.txt").read_text().splitlines()
    rules = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    assert rules == ["numpy<2", "opencv-python-headless<4.12"]


# ---- fetch_verified: local file:// URLs, no network ----


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(tmp_path, url, pin, *, trust=None, dry_run=False, flags=""):
    dest = tmp_path / "out" / "asset.deb"
    dest.parent.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("TRUST_UNPINNED", "DRY_RUN")}
    if trust is not None:
        env["TRUST_UNPINNED"] = trust
    if dry_run:
        env["DRY_RUN"] = "1"
    script = (
        f'source "{LIB}"; edgetpu_parse_args "--trust-unpinned" usage {flags}; '
        f'fetch_verified "{url}" "{pin}" "{dest}"'
    )
    result = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    return result, dest


@pytest.fixture
def asset(tmp_path):
    data = b"a pinned release asset\n"
    path = tmp_path / "asset.deb"
    path.write_bytes(data)
    return path.as_uri(), sha256(data)


def test_fetch_verified_accepts_the_pinned_hash(tmp_path, asset):
    url, digest = asset
    result, dest = fetch(tmp_path, url, digest)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == b"a pinned release asset\n"
    assert list(dest.parent.iterdir()) == [dest]


def test_fetch_verified_refuses_an_unknown_pin_and_prints_the_hash(tmp_path, asset):
    url, digest = asset
    result, dest = fetch(tmp_path, url, "unknown")
    assert result.returncode == 1
    assert digest in result.stderr and "TRUST_UNPINNED=1" in result.stderr
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize(("trust", "flags"), [("1", ""), (None, "--trust-unpinned")])
def test_fetch_verified_uses_an_unknown_pin_when_told_to_trust_it(tmp_path, asset, trust, flags):
    url, digest = asset
    result, dest = fetch(tmp_path, url, "unknown", trust=trust, flags=flags)
    assert result.returncode == 0, result.stderr
    assert digest in result.stderr
    assert dest.read_bytes() == b"a pinned release asset\n"


def test_fetch_verified_always_refuses_a_mismatch(tmp_path, asset):
    url, digest = asset
    wrong = sha256(b"something else")
    result, dest = fetch(tmp_path, url, wrong, trust="1", flags="--trust-unpinned")
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stderr and wrong in result.stderr and digest in result.stderr
    assert list(dest.parent.iterdir()) == []


def test_fetch_verified_refuses_a_malformed_pin(tmp_path, asset):
    url, _digest = asset
    result, dest = fetch(tmp_path, url, "abc123", trust="1")
    assert result.returncode == 1 and "64 hex digits" in result.stderr
    assert list(dest.parent.iterdir()) == []


def test_fetch_verified_dry_run_downloads_nothing(tmp_path):
    url = (tmp_path / "not-there.deb").as_uri()
    result, dest = fetch(tmp_path, url, "unknown", dry_run=True)
    assert result.returncode == 0, result.stderr
    assert f"+ download {url} -> {dest} (sha256 unknown)" in result.stdout
    assert list(dest.parent.iterdir()) == []


# ---- update-edgetpu-pins.sh on a copy of a pin file with local assets ----


def pin_file(tmp_path, lines):
    path = tmp_path / "pins.sh"
    path.write_text("".join(f"edgetpu_pin {line}\n" for line in lines))
    return path


def update_pins(path, *args, dry_run=False):
    env = dict(os.environ, EDGETPU_PINS_FILE=str(path))
    env.pop("DRY_RUN", None)
    if dry_run:
        env["DRY_RUN"] = "1"
    return subprocess.run(
        ["bash", "deploy/update-edgetpu-pins.sh", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_update_pins_writes_the_hashes_in_place(tmp_path):
    deb, whl = tmp_path / "a.deb", tmp_path / "b.whl"
    deb.write_bytes(b"deb")
    whl.write_bytes(b"wheel")
    path = pin_file(
        tmp_path,
        [
            f"libedgetpu-std ubuntu22.04-arm64 unknown {deb.as_uri()}",
            f"libedgetpu-std ubuntu22X04-arm64 unknown {tmp_path.as_uri()}/missing.deb",
            f"tflite-runtime cp311-aarch64 {sha256(b'wheel')} {whl.as_uri()}",
        ],
    )
    result = update_pins(path)
    assert result.returncode == 1  # one asset is missing
    assert "could not download" in result.stderr
    assert read_pins(path) == {
        ("libedgetpu-std", "ubuntu22.04-arm64"): (sha256(b"deb"), deb.as_uri()),
        ("libedgetpu-std", "ubuntu22X04-arm64"): ("unknown", f"{tmp_path.as_uri()}/missing.deb"),
        ("tflite-runtime", "cp311-aarch64"): (sha256(b"wheel"), whl.as_uri()),
    }


def test_update_pins_leaves_a_changed_hash_alone_unless_told(tmp_path):
    deb = tmp_path / "a.deb"
    deb.write_bytes(b"replaced upstream")
    old = sha256(b"the original")
    path = pin_file(tmp_path, [f"gasket-dkms all {old} {deb.as_uri()}"])
    result = update_pins(path)
    assert result.returncode == 1 and "--replace-changed" in result.stderr
    assert read_pins(path)[("gasket-dkms", "all")][0] == old
    result = update_pins(path, "--replace-changed")
    assert result.returncode == 0, result.stderr
    assert read_pins(path)[("gasket-dkms", "all")][0] == sha256(b"replaced upstream")


def test_update_pins_dry_run_changes_nothing(tmp_path):
    deb = tmp_path / "a.deb"
    deb.write_bytes(b"deb")
    path = pin_file(tmp_path, [f"gasket-dkms all unknown {deb.as_uri()}"])
    before = path.read_text()
    result = update_pins(path, dry_run=True)
    assert result.returncode == 0, result.stderr
    assert f"+ download {deb.as_uri()}" in result.stdout
    assert path.read_text() == before
