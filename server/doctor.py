"""Checks everything a kiosk needs on this machine and says how to fix what is missing.

    python -m server.doctor [--json] [--probe-edgetpu] [--edgetpu-lib PATH]
                            [--data-dir DIR] [--mirror DIR] [--host HOST] [--port PORT]
    python -m server.doctor --hardware-report FILE [--photos DIR]   (server.edgetpu_report)

Each row is ``ok``, ``warn`` or ``fail``, with what was seen and, when it is not ok, the exact
command or step that fixes it. The exit status is 0 when the kiosk can run (on the CPU
counts) and 1 when it cannot: only a ``fail`` row stops a kiosk, a ``warn`` row costs speed
or a feature (the Edge TPU, a camera, the kiosk screen).

The doctor changes nothing: models are looked for, never copied or downloaded; the database
is opened read-only. libedgetpu is only ever loaded in child processes (a libedgetpu built
for another TensorFlow crashes the process that loads it), through ``server.hw.probe`` for
``--probe-edgetpu`` and for its version.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import glob
import grp
import importlib.metadata
import importlib.util
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, List, NamedTuple, Optional, Sequence

from server import models
from server.hw import runtime as rt
from server.hw.cameras import video_devices
from server.settings import Settings, SettingsError, from_args

OK, WARN, FAIL = "ok", "warn", "fail"
ROOT = Path(__file__).resolve().parents[1]
SERVICE_USER = "teachable"
UNITS = ("teachable.service", "teachable-healthcheck.timer", "teachable-kiosk.service")
ROWS = (
    "python",
    "os",
    "settings",
    "tflite_runtime",
    "libedgetpu",
    "edgetpu_usb",
    "edgetpu_pcie",
    "edgetpu_probe",
    "cameras",
    "model_cpu",
    "model_edgetpu",
    "data_dir",
    "database",
    "port",
    "service_user",
    "systemd",
    "chromium",
)
MIN_FREE_MB = 500
EDGETPU_LIB_ENV = "TEACHABLE_EDGETPU_LIB"
# Distribution names per runtime module: importlib.metadata knows distributions, not modules.
_RUNTIMES = {
    "ai_edge_litert": ("ai-edge-litert",),
    "tflite_runtime": ("tflite-runtime", "tflite_runtime"),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64"),
}
_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/usr/local/lib",
)
_USB_FIRMWARE_PENDING = ("1a6e", "089a")
_INSTALL_EDGETPU = (
    "install the Edge TPU runtime from Coral's package repository "
    "(sudo apt install libedgetpu1-std; Raspberry Pi: sudo deploy/install-rpi-coral-usb.sh)"
)
# A child loads libedgetpu and prints edgetpu_version(); a wrong build crashes the child only.
_VERSION_CHILD = (
    "import ctypes, sys\n"
    "lib = ctypes.CDLL(sys.argv[1])\n"
    "lib.edgetpu_version.restype = ctypes.c_char_p\n"
    "print(lib.edgetpu_version().decode('utf-8', 'replace'))\n"
)


class Check(NamedTuple):
    """One row of the doctor's table.

    Attributes:
      name: one of ``ROWS``.
      status: ``ok``, ``warn`` (the kiosk runs, with less) or ``fail`` (it cannot run).
      detail: what was seen.
      fix: the command or step that fixes it ('' when ok).
    """

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict:
        return self._asdict()


def _run(cmd: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Runs a command without a shell; a missing program or a timeout is a result, not a raise."""
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(cmd), 127, "", f"{cmd[0]}: not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(cmd), 124, "", f"timed out after {timeout:g} s")


def _http_get(url: str, timeout: float = 2.0) -> Optional[dict]:
    """The JSON body of ``url`` (any HTTP status), or None when nothing answers with JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as e:  # /healthz answers 503 with JSON on a fault
        body = e.read()
    except (OSError, ValueError):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _user_groups(name: str) -> Optional[List[str]]:
    """The group names of user ``name`` (primary included), or None when there is no such user."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return None
    names = []
    for gid in os.getgrouplist(name, user.pw_gid):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    return names


def _open_camera(path: str, timeout: float = 5.0) -> tuple:
    """Opens a V4L2 device with OpenCV and reads a frame: ``("", "640x480")`` or (problem, "")."""
    if not os.access(path, os.R_OK | os.W_OK):
        return "no permission (the video group)", ""
    outcome: list = []

    def attempt() -> None:
        try:
            import cv2
        except ImportError:
            outcome.append(("OpenCV is not installed", ""))
            return
        cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
        try:
            if not cap.isOpened():
                outcome.append(("does not open (in use, or not a capture device)", ""))
                return
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, 640)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, 480)
            ok, frame = cap.read()
            if not ok or frame is None:
                outcome.append(("opens but gives no frame", ""))
            else:
                outcome.append(("", f"{frame.shape[1]}x{frame.shape[0]}"))
        finally:
            cap.release()

    # a thread, as the kiosk's own camera probe does: a driver that hangs cannot hold us up
    thread = threading.Thread(target=attempt, name="doctor-camera", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else (f"no frame within {timeout:g} s", "")


def _model_places(environ) -> List[Path]:
    """Folders on this machine where model files may already be: other kiosks' caches, CI."""
    places = [
        Path.home() / ".local" / "share" / "teachable" / "models",
        Path("/var/lib/teachable/models"),
        ROOT / ".ci-data" / "models",
        ROOT.parent / "shared" / "models",
    ]
    if environ.get(models.DATA_DIR_ENV):
        places.insert(0, Path(environ[models.DATA_DIR_ENV]) / "models")
    return places


@dataclasses.dataclass
class Machine:
    """Where the doctor looks: the real machine by default, fakes in tests.

    Attributes:
      sysfs: the USB devices folder (``/sys/bus/usb/devices``).
      dev: the device folder (``/dev``).
      proc_modules: the loaded kernel modules (``/proc/modules``).
      sys_module: kernel modules, built in ones included (``/sys/module``).
      systemd_dir: present when systemd runs (``/run/systemd/system``).
      unit_dir: where the installers put the units (``/etc/systemd/system``).
      which: ``shutil.which``.
      run: runs a command, returns a ``CompletedProcess`` (never raises).
      http_get: ``url -> dict or None``.
      user_groups: ``name -> [group names] or None`` when the user does not exist.
      open_camera: ``path -> (problem or "", "WxH")``.
      model_places: extra folders to look for model files in; None: the known ones.
      euid: the effective user id (root sees every device; then the service user's groups
        decide).
    """

    sysfs: str = "/sys/bus/usb/devices"
    dev: str = "/dev"
    proc_modules: str = "/proc/modules"
    sys_module: str = "/sys/module"
    systemd_dir: str = "/run/systemd/system"
    unit_dir: str = "/etc/systemd/system"
    which: Callable[[str], Optional[str]] = shutil.which
    run: Callable[..., subprocess.CompletedProcess] = _run
    http_get: Callable[[str], Optional[dict]] = _http_get
    user_groups: Callable[[str], Optional[List[str]]] = _user_groups
    open_camera: Callable[[str], tuple] = _open_camera
    model_places: Optional[Sequence[Path]] = None
    euid: int = dataclasses.field(default_factory=os.geteuid)

    def edgetpu_devices(self) -> list:
        return rt.edgetpu_devices(self.sysfs, self.dev)

    def usable(self, path: str) -> bool:
        """Whether the kiosk may read and write the device node ``path``.

        As root, every node is usable, so the question becomes whether the service user may.
        """
        if self.euid != 0:
            return os.access(path, os.R_OK | os.W_OK)
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_mode & 0o006 == 0o006:
            return True
        groups = self.user_groups(SERVICE_USER)
        if groups is None:
            return True  # no service user: root runs the kiosk
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        return group in groups and st.st_mode & 0o060 == 0o060


class Context(NamedTuple):
    """What the checks share: the settings, where to look, and what earlier checks found."""

    settings: Settings
    machine: Machine
    environ: dict
    devices: list
    edgetpu_lib: Optional[Path]
    probe: Optional[Callable]


# ----- the checks -------------------------------------------------------------------------


def check_python(ctx: Context) -> Check:
    # an older Python cannot even import this module (pyproject.toml: requires-python >= 3.9)
    return Check("python", OK, f"{platform.python_version()} at {sys.executable}")


def _read(path, default: str = "") -> str:
    try:
        return Path(path).read_text(errors="replace").strip().strip("\x00")
    except OSError:
        return default


def check_os(ctx: Context) -> Check:
    release = _read("/etc/os-release")
    pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.M)
    board = _read("/proc/device-tree/model")
    parts = [
        pretty.group(1) if pretty else platform.system(),
        f"kernel {platform.release()}",
        platform.machine(),
    ]
    if board:
        parts.append(board)
    detail = ", ".join(parts)
    if platform.system() != "Linux":
        return Check(
            "os",
            WARN,
            detail,
            "the kiosk is built for Linux (cameras through V4L2, the Edge TPU through "
            "libedgetpu): expect the CPU and the browser camera only",
        )
    return Check("os", OK, detail)


def _runtime_versions() -> dict:
    """Runtime module → installed version ('' when not installed); nothing is imported."""
    found = {}
    for module, distributions in _RUNTIMES.items():
        if importlib.util.find_spec(module) is None:
            found[module] = ""
            continue
        version = "unknown version"
        for distribution in distributions:
            try:
                version = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        found[module] = version
    return found


def check_runtime(ctx: Context) -> Check:
    found = _runtime_versions()
    installed = [f"{m} {v}" for m, v in found.items() if v]
    try:
        pycoral = (
            importlib.metadata.version("pycoral") if importlib.util.find_spec("pycoral") else ""
        )
    except importlib.metadata.PackageNotFoundError:
        pycoral = "unknown version"
    if not installed:
        return Check(
            "tflite_runtime",
            FAIL,
            "no TFLite runtime (ai_edge_litert, tflite_runtime, tensorflow) is installed",
            f"{sys.executable} -m pip install ai-edge-litert (or install the app's "
            "requirements.txt into this environment)",
        )
    # the CPU extractor uses the first of server.hw.runtime's order that is installed
    used = next(m for m in ("ai_edge_litert", "tflite_runtime", "tensorflow") if found[m])
    detail = ", ".join(installed) + f"; the CPU extractor uses {used}"
    if pycoral:
        detail += f"; pycoral {pycoral}"
    return Check("tflite_runtime", OK, detail)


def find_edgetpu_libraries(machine: Machine, explicit: Optional[Path] = None) -> List[str]:
    """libedgetpu files on this machine, the explicit one first; none is loaded.

    Looks at ``explicit``, the dynamic linker's cache (``ldconfig -p``) and the usual library
    folders.
    """
    found: List[str] = []
    if explicit is not None:
        found.append(str(explicit))
    name = rt.EDGETPU_SHARED_LIB.get(platform.system(), rt.EDGETPU_SHARED_LIB["Linux"])
    ldconfig = machine.which("ldconfig") or (
        "/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None
    )
    if ldconfig:
        listing = machine.run([ldconfig, "-p"]).stdout
        for line in listing.splitlines():
            match = re.match(r"\s*(libedgetpu\S*)\s.*=>\s*(\S+)", line)
            if match:
                found.append(match.group(2))
    for folder in _LIB_DIRS:
        found.extend(sorted(glob.glob(os.path.join(folder, name))))
    unique = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def edgetpu_library_version(machine: Machine, library: str, timeout: float = 15.0) -> tuple:
    """``(version, problem)`` of a libedgetpu file, asked in a child process.

    A libedgetpu that crashes when loaded takes only the child with it; the problem then names
    the signal.
    """
    result = machine.run([sys.executable, "-c", _VERSION_CHILD, library], timeout=timeout)
    if result.returncode == 0:
        return result.stdout.strip(), ""
    if result.returncode < 0:
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        return "", f"loading it killed the child process ({name})"
    last = (result.stderr.strip().splitlines() or ["no message"])[-1]
    return "", f"cannot be loaded: {last}"


def _edgetpu_packages(machine: Machine) -> str:
    if not machine.which("dpkg-query"):
        return ""
    result = machine.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package} ${Version}\n"])
    packages = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith("ii") and fields[1].startswith("libedgetpu"):
            packages.append(f"{fields[1]} {fields[2]}")
    return ", ".join(packages)


def check_libedgetpu(ctx: Context) -> Check:
    machine, explicit = ctx.machine, ctx.edgetpu_lib
    needed = bool(ctx.devices)
    if explicit is not None and not Path(explicit).is_file():
        return Check(
            "libedgetpu",
            WARN,
            f"--edgetpu-lib {explicit} is not a file",
            "give the path of a libedgetpu.so.1 (ldconfig -p | grep edgetpu lists them), or "
            f"leave --edgetpu-lib out; {_INSTALL_EDGETPU}",
        )
    libraries = find_edgetpu_libraries(machine, explicit)
    packages = _edgetpu_packages(machine)
    if not libraries:
        if not needed:
            return Check("libedgetpu", OK, "not installed (only an Edge TPU needs it)")
        return Check(
            "libedgetpu",
            WARN,
            "not installed, but an Edge TPU is plugged in: the kiosk runs on the CPU",
            _INSTALL_EDGETPU,
        )
    library = libraries[0]
    version, problem = edgetpu_library_version(machine, library)
    others = f"; also {', '.join(libraries[1:])}" if len(libraries) > 1 else ""
    package = f" (package {packages})" if packages else ""
    if problem:
        return Check(
            "libedgetpu",
            WARN,
            f"{library}{package} {problem}{others}",
            "reinstall the Edge TPU runtime that matches the TFLite runtime: "
            "sudo deploy/install-rpi-coral-usb.sh on a Raspberry Pi, else "
            "sudo apt install --reinstall libedgetpu1-std; "
            "python -m server.doctor --probe-edgetpu then shows whether the pair works",
        )
    return Check("libedgetpu", OK, f"{library}{package}: {version}{others}")


def _usb_speed_note(speed: str) -> tuple:
    """(status, words) for a sysfs ``speed`` in Mbit/s."""
    try:
        mbits = float(speed)
    except ValueError:
        return WARN, f"link speed unknown ({speed or 'no speed file'})"
    if mbits >= 5000:
        return OK, f"USB 3 ({speed} Mbit/s)"
    return WARN, f"USB 2 or slower ({speed} Mbit/s)"


def check_edgetpu_usb(ctx: Context) -> Check:
    machine = ctx.machine
    rows, worst, fixes = [], OK, []
    for device in sorted(glob.glob(os.path.join(machine.sysfs, "*"))):
        ids = (_read(os.path.join(device, "idVendor")), _read(os.path.join(device, "idProduct")))
        if ids not in rt._EDGETPU_USB_IDS:
            continue
        name = os.path.basename(device)
        status, speed = _usb_speed_note(_read(os.path.join(device, "speed")))
        words = [f"usb:{name} ({ids[0]}:{ids[1]}", speed]
        if ids == _USB_FIRMWARE_PENDING:
            words.append("firmware not loaded yet: normal until libedgetpu first opens it")
        if status != OK:
            fixes.append(
                "plug the Accelerator straight into a USB 3 port (often blue) with a USB 3 "
                "cable: Coral documents inference several times slower over USB 2"
            )
        try:
            node = os.path.join(
                machine.dev,
                "bus",
                "usb",
                f"{int(_read(os.path.join(device, 'busnum'))):03d}",
                f"{int(_read(os.path.join(device, 'devnum'))):03d}",
            )
        except ValueError:
            node = ""
        if node and os.path.exists(node) and not machine.usable(node):
            status = WARN
            words.append(f"{node} is not readable and writable by the kiosk")
            fixes.append(
                "sudo install -m 0644 deploy/udev/99-coral-usb.rules /etc/udev/rules.d/ && "
                "sudo udevadm control --reload-rules && sudo udevadm trigger; "
                f"sudo usermod -aG plugdev {SERVICE_USER}; then unplug and replug the Accelerator"
            )
        rows.append(", ".join(words) + ")")
        worst = WARN if status == WARN else worst
    if not rows:
        return Check("edgetpu_usb", OK, "no Coral USB Accelerator plugged in")
    return Check("edgetpu_usb", worst, "; ".join(rows), "; ".join(dict.fromkeys(fixes)))


def _kernel_modules(machine: Machine) -> set:
    loaded = {line.split()[0] for line in _read(machine.proc_modules).splitlines() if line.split()}
    built_in = {m for m in ("apex", "gasket") if os.path.isdir(os.path.join(machine.sys_module, m))}
    return (loaded | built_in) & {"apex", "gasket"}


def check_edgetpu_pcie(ctx: Context) -> Check:
    machine = ctx.machine
    nodes = sorted(glob.glob(os.path.join(machine.dev, "apex_*")))
    drivers = _kernel_modules(machine)
    driver = f"driver {', '.join(sorted(drivers))} loaded" if drivers else "no apex driver listed"
    if not nodes:
        if "apex" in drivers:
            return Check(
                "edgetpu_pcie",
                WARN,
                f"{driver} but no {machine.dev}/apex_N device",
                "check that the card is seated and seen (lspci -nn | grep 089a) and look for "
                "apex errors in sudo dmesg; then reboot",
            )
        return Check("edgetpu_pcie", OK, "no PCIe/M.2 Edge TPU (no /dev/apex_N)")
    unusable = [n for n in nodes if not machine.usable(n)]
    detail = f"{', '.join(nodes)}, {driver}"
    if unusable:
        who = f"the service user {SERVICE_USER}" if machine.euid == 0 else "this user"
        user = SERVICE_USER if machine.euid == 0 else (os.environ.get("USER") or SERVICE_USER)
        return Check(
            "edgetpu_pcie",
            WARN,
            f"{detail}; {', '.join(unusable)} not readable and writable by {who}",
            "sudo groupadd -f apex && sudo usermod -aG apex "
            f'{user}, and the udev rule SUBSYSTEM=="apex", MODE="0660", GROUP="apex" in '
            "/etc/udev/rules.d/65-apex.rules (Coral's PCIe guide); then reboot",
        )
    return Check("edgetpu_pcie", OK, f"{detail}; readable and writable")


def _default_probe() -> Callable:
    try:
        from server.hw.probe import probe_edgetpu
    except ImportError as e:
        problem = f"this version of the app has no Edge TPU probe ({e})"

        def probe_edgetpu(**_):
            fields = dict.fromkeys(("runtime", "runtime_version", "library", "device"), "")
            fields.update(library_version="", signal="", ms_per_inference=0.0, similarity=0.0)
            return SimpleNamespace(outcome="error", diagnosis=f"{problem}: update it", **fields)

    return probe_edgetpu


def check_probe(ctx: Context) -> Check:
    if ctx.probe is None:
        if ctx.devices:
            return Check(
                "edgetpu_probe",
                WARN,
                f"not run; an Edge TPU is present ({', '.join(ctx.devices)})",
                "python -m server.doctor --probe-edgetpu (tries it in a child process, a few "
                "seconds)",
            )
        return Check("edgetpu_probe", OK, "not run (no Edge TPU present)")
    library = str(ctx.edgetpu_lib) if ctx.edgetpu_lib is not None else None
    settings = ctx.settings
    result = ctx.probe(library=library, data_dir=settings.data_dir, mirror=_mirror(ctx))
    facts = [f for f in (result.device, result.runtime, result.runtime_version) if f]
    if result.library:
        facts.append(f"{result.library} {result.library_version}".strip())
    if result.outcome == "ok":
        facts.append(f"{result.ms_per_inference:.1f} ms per inference")
        facts.append(f"similarity to the CPU {result.similarity:.4f}")
        return Check("edgetpu_probe", OK, "passed: " + ", ".join(facts))
    if result.outcome == "no_device" and not ctx.devices:
        return Check("edgetpu_probe", OK, "no Edge TPU to probe")
    seen = f" ({', '.join(facts)})" if facts else ""
    killed = f", {result.signal}" if result.signal else ""
    return Check(
        "edgetpu_probe",
        WARN,
        f"{result.outcome}{killed}{seen}: the kiosk runs on the CPU",
        result.diagnosis,
    )


def check_cameras(ctx: Context) -> Check:
    paths = video_devices(ctx.machine.dev)
    if not paths:
        return Check(
            "cameras",
            WARN,
            "no V4L2 camera (no /dev/video*): the kiosk shows a synthetic scene or uses the "
            "browser's camera",
            "plug in a USB webcam (UVC) and run the doctor again",
        )
    seen, working = [], []
    for path in paths:
        problem, size = ctx.machine.open_camera(path)
        seen.append(f"{path} {size}" if not problem else f"{path}: {problem}")
        if not problem:
            working.append(path)
    if working:
        # a UVC webcam makes a second, metadata-only node that never opens: not a problem
        return Check("cameras", OK, "; ".join(seen))
    fix = (
        f"sudo usermod -aG video {SERVICE_USER} (and your own user), close any other program "
        "using the camera (fuser -v /dev/video*), or replug the webcam"
    )
    return Check("cameras", WARN, "; ".join(seen) + ": none gives a frame", fix)


def _mirror(ctx: Context) -> Optional[Path]:
    if ctx.settings.mirror is not None:
        return Path(ctx.settings.mirror)
    env = ctx.environ.get(models.MIRROR_ENV)
    return Path(env) if env else None


def _owner_prefix(folder: Path) -> str:
    """``sudo -u OWNER `` when this user cannot write ``folder`` (or its nearest parent)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return ""
    try:
        owner = pwd.getpwuid(probe.stat().st_uid).pw_name
    except (KeyError, OSError):
        return "sudo "
    return f"sudo -u {owner} "


def _fetch_command(data_dir: Path, mirror: Optional[Path], *flags: str) -> str:
    words = [sys.executable, "-m", "server.models", "fetch"]
    if mirror is not None:
        words += ["--mirror", str(mirror)]
    words += ["--data-dir", str(data_dir), *flags]
    return f"cd {shlex.quote(str(ROOT))} && {_owner_prefix(data_dir)}" + " ".join(
        shlex.quote(w) for w in words
    )


def _verified_copy(info: models.ModelInfo, folders: Sequence[Path]) -> Optional[Path]:
    for folder in folders:
        candidate = Path(folder) / info.filename
        try:
            if candidate.is_file() and models.sha256_of(candidate) == info.sha256:
                return candidate
        except OSError:
            continue
    return None


def _check_model(ctx: Context, info: models.ModelInfo, name: str, needed: bool) -> Check:
    """Whether ``info`` is in the data directory's cache, and else where it can come from.

    Nothing is copied: ``models.locate`` would fill the cache from a mirror as it looks.
    """
    data_dir = Path(ctx.settings.data_dir)
    cache = data_dir / "models" / info.filename
    if ctx.settings.model is not None and not info.edgetpu:
        cache = Path(ctx.settings.model)
        if models.sha256_of(cache) == info.sha256:
            return Check(name, OK, f"{cache} (--model), sha256 {info.sha256[:12]}… verified")
        return Check(name, WARN, f"--model {cache} is not {info.filename}: used unverified")
    if cache.is_file():
        try:
            actual = models.sha256_of(cache)
        except OSError as e:
            actual = f"unreadable ({e.strerror})"
        if actual == info.sha256:
            return Check(name, OK, f"{cache}, sha256 {info.sha256[:12]}… verified")
        problem = f"{cache} is corrupt (sha256 {actual[:16]}, expected {info.sha256[:16]})"
    else:
        problem = f"not in {cache.parent}"
    mirror = _mirror(ctx)
    places = ctx.machine.model_places
    places = _model_places(ctx.environ) if places is None else places
    places = [p for p in places if Path(p).resolve() != cache.parent.resolve()]
    found = _verified_copy(info, ([mirror] if mirror is not None else []) + places)
    if found is not None:
        folder = found.parent
        # fetch takes both models unless told --cpu-only: the folder must hold what is asked
        whole = info.edgetpu or _verified_copy(models.EXTRACTOR_EDGETPU, [folder]) is not None
        flags = ("--no-download",) if whole else ("--cpu-only", "--no-download")
        if mirror is not None and folder == Path(mirror):
            detail = f"{problem}; the mirror {mirror} has it (the kiosk copies it at start)"
        else:
            detail = f"{problem}; a verified copy is at {found}"
        return Check(
            name,
            WARN if needed else OK,
            detail,
            _fetch_command(data_dir, folder, *flags),
        )
    fix = (
        f"online: {_fetch_command(data_dir, None)}; offline: copy {info.filename} (sha256 "
        f"{info.sha256}) from another machine into a folder DIR and run "
        f"{_fetch_command(data_dir, Path('DIR'), '--no-download')}"
    )
    if not needed:
        return Check(name, OK, f"{problem} (not needed: no Edge TPU in use)")
    status = WARN if info.edgetpu else FAIL
    where = f" nor in the mirror {mirror}" if mirror else ""
    return Check(name, status, f"{problem}{where}, nor anywhere else on this machine", fix)


def check_model_cpu(ctx: Context) -> Check:
    return _check_model(ctx, models.EXTRACTOR_CPU, "model_cpu", needed=True)


def check_model_edgetpu(ctx: Context) -> Check:
    needed = bool(ctx.devices) and ctx.settings.tpu != "off"
    return _check_model(ctx, models.EXTRACTOR_EDGETPU, "model_edgetpu", needed=needed)


def check_data_dir(ctx: Context) -> Check:
    data_dir = Path(ctx.settings.data_dir)
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return Check(
            "data_dir",
            FAIL,
            f"{existing} is not a folder",
            f"remove {existing} or choose another --data-dir",
        )
    writable = os.access(existing, os.W_OK | os.X_OK)
    usage = shutil.disk_usage(existing)
    free_mb = usage.free / 1e6
    made = "" if existing == data_dir else f" (not there yet; {existing} would hold it)"
    detail = f"{data_dir}{made}, {free_mb:,.0f} MB free"
    if not writable:
        who = pwd.getpwuid(os.geteuid()).pw_name
        return Check(
            "data_dir",
            FAIL,
            f"{detail}; {existing} is not writable by {who}",
            f"sudo mkdir -p {shlex.quote(str(data_dir))} && sudo chown -R {who} "
            f"{shlex.quote(str(data_dir))} (or the service user: sudo chown -R "
            f"{SERVICE_USER}:{SERVICE_USER} ...), or choose another --data-dir",
        )
    if free_mb < MIN_FREE_MB:
        return Check(
            "data_dir",
            WARN,
            f"{detail}: below {MIN_FREE_MB} MB",
            "free some space on that disk (sudo journalctl --vacuum-size=100M, sudo apt clean) "
            "or choose a --data-dir on a bigger one",
        )
    return Check("data_dir", OK, f"{detail}, writable")


def check_database(ctx: Context) -> Check:
    path = Path(ctx.settings.data_dir) / "teachable.sqlite3"
    if not path.is_file():
        return Check("database", OK, f"no {path.name} yet (the kiosk creates it)")
    try:
        # read-only: the doctor never changes the kiosk's data, even while the kiosk runs
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[
                0
            ]
        finally:
            db.close()
    except sqlite3.OperationalError as e:  # cannot open it: permissions, a lock
        return Check(
            "database",
            WARN,
            f"{path} cannot be read: {e}",
            f"check its owner and permissions (ls -l {shlex.quote(str(path))}*); run the doctor "
            "as the user the kiosk runs as",
        )
    except sqlite3.DatabaseError as e:  # "file is not a database", "disk image is malformed"
        rows = [str(e)]
    if rows != ["ok"]:
        return Check(
            "database",
            FAIL,
            f"{path} is damaged: {'; '.join(rows[:3])}",
            f"stop the kiosk, move it aside (mv {shlex.quote(str(path))} "
            f"{shlex.quote(str(path))}.damaged) and start it again (it starts empty); a project "
            "saved earlier can be imported back",
        )
    size_mb = path.stat().st_size / 1e6
    return Check("database", OK, f"{path}, {size_mb:.1f} MB, {tables} tables, integrity ok")


def check_port(ctx: Context) -> Check:
    host, port = ctx.settings.host, ctx.settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # as gunicorn binds: a port in TIME_WAIT is free to it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        in_use = e.errno == errno.EADDRINUSE
        bound = e
    else:
        return Check("port", OK, f"{host}:{port} is free")
    finally:
        sock.close()
    if not in_use:
        return Check(
            "port",
            FAIL,
            f"cannot listen on {host}:{port}: {bound.strerror}",
            "use a port above 1023 (--port 5000) or an address of this machine (--host 0.0.0.0)",
        )
    local = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    health = ctx.machine.http_get(f"http://{local}:{port}/healthz")
    if health is not None and "status" in health:
        facts = ", ".join(f"{k} {health[k]}" for k in ("backend", "camera") if k in health)
        return Check(
            "port",
            OK if health["status"] == "ok" else WARN,
            f"{host}:{port} is the kiosk itself, running: status {health['status']}"
            + (f", {facts}" if facts else ""),
            "" if health["status"] == "ok" else f"curl http://{local}:{port}/healthz says why",
        )
    return Check(
        "port",
        FAIL,
        f"{host}:{port} is in use by another program",
        f"sudo ss -ltnp 'sport = :{port}' shows which; stop it or start the kiosk with another "
        "--port",
    )


def check_service_user(ctx: Context) -> Check:
    groups = ctx.machine.user_groups(SERVICE_USER)
    if groups is None:
        return Check(
            "service_user", OK, f"no user {SERVICE_USER}: not installed as a service (fine by hand)"
        )
    wanted = ["video", "plugdev"]
    if glob.glob(os.path.join(ctx.machine.dev, "apex_*")):
        wanted.append("apex")
    missing = [g for g in wanted if g not in groups]
    detail = f"{SERVICE_USER} is in {', '.join(sorted(groups))}"
    if missing:
        return Check(
            "service_user",
            WARN,
            f"{detail}; not in {', '.join(missing)}",
            f"sudo usermod -aG {','.join(missing)} {SERVICE_USER} && sudo systemctl restart "
            "teachable.service",
        )
    return Check("service_user", OK, detail)


def check_systemd(ctx: Context) -> Check:
    machine = ctx.machine
    if not os.path.isdir(machine.systemd_dir) or not machine.which("systemctl"):
        installed = [u for u in UNITS if os.path.exists(os.path.join(machine.unit_dir, u))]
        units = f"; units installed: {', '.join(installed)}" if installed else ""
        return Check("systemd", OK, f"not under systemd (a container or chroot?){units}")
    states, problems, fixes = [], [], []
    for unit in UNITS:
        enabled = machine.run(["systemctl", "is-enabled", unit]).stdout.strip() or "not-found"
        active = machine.run(["systemctl", "is-active", unit]).stdout.strip() or "unknown"
        states.append(f"{unit} {enabled}/{active}")
        if unit == "teachable.service" and enabled not in ("not-found", ""):
            if enabled != "enabled":
                problems.append(unit)
                fixes.append(f"sudo systemctl enable --now {unit}")
            elif active == "failed":
                problems.append(unit)
                fixes.append(
                    f"sudo journalctl -u {unit} -n 50 says why; then sudo systemctl restart {unit}"
                )
    if all(s.split()[1].startswith("not-found") for s in states):
        return Check("systemd", OK, "no kiosk unit installed (start it by hand: python -m server)")
    if problems:
        return Check("systemd", WARN, "; ".join(states), "; ".join(fixes))
    return Check("systemd", OK, "; ".join(states))


def check_chromium(ctx: Context) -> Check:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = ctx.machine.which(name)
        if path:
            return Check("chromium", OK, path)
    return Check(
        "chromium",
        WARN,
        "no Chromium: this machine cannot show the kiosk screen (phones and other screens "
        "still connect)",
        "sudo apt install chromium (Raspberry Pi OS: chromium-browser), or install with "
        "deploy/install-cpu.sh, which also sets up the kiosk screen",
    )


CHECKS = (
    check_python,
    check_os,
    None,  # settings: read before the others, in run_checks
    check_runtime,
    check_libedgetpu,
    check_edgetpu_usb,
    check_edgetpu_pcie,
    check_probe,
    check_cameras,
    check_model_cpu,
    check_model_edgetpu,
    check_data_dir,
    check_database,
    check_port,
    check_service_user,
    check_systemd,
    check_chromium,
)


def read_settings(argv: Sequence[str], environ) -> tuple:
    """``(Settings, Check)``: the kiosk's settings from these flags and the environment."""
    try:
        settings = from_args(list(argv), environ)
    except SettingsError as e:
        argv = list(argv)
        try:  # the other rows still look at the data directory that was asked for
            at = argv.index("--data-dir")
            settings = Settings(data_dir=Path(argv[at + 1]))
        except (ValueError, IndexError):
            settings = Settings()
        return settings, Check(
            "settings",
            FAIL,
            str(e),
            "fix that flag or the TEACHABLE_ variable (/etc/default/teachable for the service)",
        )
    mirror = f", mirror {settings.mirror}" if settings.mirror else ""
    return settings, Check(
        "settings",
        OK,
        f"data dir {settings.data_dir}, {settings.host}:{settings.port}, "
        f"tpu {settings.tpu}{mirror}",
    )


def run_checks(
    settings: Settings,
    *,
    machine: Optional[Machine] = None,
    environ=None,
    edgetpu_lib: Optional[Path] = None,
    probe: Optional[Callable] = None,
    settings_check: Optional[Check] = None,
) -> List[Check]:
    """Every row of the doctor's table, in ``ROWS`` order.

    Args:
      settings: the kiosk's settings (data directory, mirror, host and port, model).
      machine: where to look (tests pass fake trees); defaults to this machine.
      environ: the environment (``$TEACHABLE_MODEL_MIRROR``); defaults to ``os.environ``.
      edgetpu_lib: an explicit libedgetpu file (``--edgetpu-lib``).
      probe: ``server.hw.probe.probe_edgetpu`` or a stand-in with its signature, to run the
        Edge TPU probe; None: the probe row says it was not run.
      settings_check: the row for reading the settings (``read_settings``).

    Returns:
      One ``Check`` per row. A check that raises becomes a ``warn`` row naming the error, so
      that one broken check never hides the others.
    """
    machine = machine or Machine()
    environ = os.environ if environ is None else environ
    ctx = Context(settings, machine, environ, machine.edgetpu_devices(), edgetpu_lib, probe)
    checks = []
    for name, check in zip(ROWS, CHECKS):
        if check is None:
            checks.append(settings_check or Check(name, OK, "given by the caller"))
            continue
        try:
            checks.append(check(ctx))
        except Exception as e:  # a doctor that crashes on one odd machine shows nothing
            checks.append(
                Check(name, WARN, f"the check itself failed: {type(e).__name__}: {e}", "report it")
            )
    return checks


def can_run(checks: Sequence[Check]) -> bool:
    """Whether the kiosk can run: no row failed."""
    return all(c.status != FAIL for c in checks)


def format_table(checks: Sequence[Check]) -> str:
    """The human table: ``status  name  detail``, and the fix under every row that is not ok."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.status != OK and c.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    failed = [c.name for c in checks if c.status == FAIL]
    warned = [c.name for c in checks if c.status == WARN]
    if failed:
        lines.append(f"\nthe kiosk cannot run: fix {', '.join(failed)} first")
    else:
        tpu = next((c for c in checks if c.name == "edgetpu_probe"), None)
        where = (
            "on the Edge TPU"
            if tpu is not None and tpu.detail.startswith("passed")
            else "on the CPU at least"
        )
        more = f" ({len(warned)} warning{'s' if len(warned) != 1 else ''})" if warned else ""
        lines.append(f"\nthe kiosk can run {where}{more}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server.doctor", description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help='print {"ok": bool, "checks": [...]}')
    p.add_argument(
        "--probe-edgetpu",
        action="store_true",
        help="try the Edge TPU in a child process (a few seconds)",
    )
    p.add_argument(
        "--edgetpu-lib", type=Path, help=f"a libedgetpu file to use (or ${EDGETPU_LIB_ENV})"
    )
    p.add_argument(
        "--data-dir", type=Path, help=f"the kiosk's data directory (or ${models.DATA_DIR_ENV})"
    )
    p.add_argument(
        "--mirror", type=Path, help=f"folder holding the model files (or ${models.MIRROR_ENV})"
    )
    p.add_argument("--host", help="the address the kiosk listens on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="the kiosk's port (default 5000)")
    p.add_argument(
        "--hardware-report",
        type=Path,
        metavar="FILE",
        help="run the Edge TPU report (probe, benchmark, Edge TPU vs CPU, the exported model, "
        "the edgetpu tests) into FILE, to attach to a bug",
    )
    p.add_argument("--photos", type=Path, help="with --hardware-report: a folder of class folders")
    return p


def main(argv=None, *, machine: Optional[Machine] = None, environ=None, probe=None) -> int:
    """The command line; ``machine``, ``environ`` and ``probe`` are for tests."""
    args = build_parser().parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    passed = []
    for flag in ("data_dir", "mirror", "host", "port"):
        value = getattr(args, flag)
        if value is not None:
            passed += [f"--{flag.replace('_', '-')}", str(value)]
    settings, settings_row = read_settings(passed, environ)
    edgetpu_lib = args.edgetpu_lib or (
        Path(environ[EDGETPU_LIB_ENV]) if environ.get(EDGETPU_LIB_ENV) else None
    )
    if args.hardware_report is not None:
        from server.edgetpu_report import main as report_main

        return report_main(
            args,
            settings,
            edgetpu_lib=edgetpu_lib,
            machine=machine,
            probe=probe,
            environ=environ,
            settings_check=settings_row,
        )
    if not args.probe_edgetpu:
        probe = None
    elif probe is None:
        probe = _default_probe()
    checks = run_checks(
        settings,
        machine=machine,
        environ=environ,
        edgetpu_lib=edgetpu_lib,
        probe=probe,
        settings_check=settings_row,
    )
    ok = can_run(checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [c.as_dict() for c in checks]}, ensure_ascii=False))
    else:
        print(format_table(checks))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
