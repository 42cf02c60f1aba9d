"""server/doctor.py: the kiosk's checks, on this machine and on fake sysfs and /dev trees."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from server import doctor, models
from server.doctor import FAIL, OK, ROWS, WARN, Check, Machine, run_checks
from server.hw.probe import ProbeResult
from server.settings import Settings

import standin

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def quiet_machine(tmp_path, **overrides) -> Machine:
    """A machine with empty sysfs and /dev trees, no systemd, no users, no other model copies."""
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    sysfs.mkdir(exist_ok=True)
    dev.mkdir(exist_ok=True)
    values = dict(
        sysfs=str(sysfs),
        dev=str(dev),
        proc_modules=str(tmp_path / "modules"),
        sys_module=str(tmp_path / "module"),
        systemd_dir=str(tmp_path / "no-systemd"),
        unit_dir=str(tmp_path / "units"),
        user_groups=lambda name: None,
        model_places=[],
    )
    values.update(overrides)
    return Machine(**values)


def usb_device(sysfs: Path, name: str, ids=("18d1", "9302"), speed="5000", bus=2, num=3):
    device = sysfs / name
    device.mkdir(parents=True)
    for field, value in zip(
        ("idVendor", "idProduct", "speed", "busnum", "devnum"), (*ids, speed, bus, num)
    ):
        (device / field).write_text(f"{value}\n")
    return device


def settings_for(data_dir, **kw) -> Settings:
    return Settings(data_dir=Path(data_dir), host="127.0.0.1", port=free_port(), **kw)


def test_json_on_this_machine_exits_0_with_every_row(model_dir):
    """The real command, as the installers run it: every row present, the CPU kiosk can run."""
    result = subprocess.run(
        [sys.executable, "-m", "server.doctor", "--json", "--data-dir", str(model_dir)]
        + ["--host", "127.0.0.1", "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(ROWS)
    for c in report["checks"]:
        assert set(c) == {"name", "status", "detail", "fix"}
        assert c["status"] in (OK, WARN, FAIL)
        assert c["detail"]
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["model_cpu"]["status"] == OK
    assert models.EXTRACTOR_CPU.sha256[:12] in rows["model_cpu"]["detail"]
    assert rows["tflite_runtime"]["status"] == OK
    assert rows["edgetpu_probe"]["detail"].startswith("not run")


def test_the_table_puts_each_fix_under_its_row(tmp_path, model_dir):
    checks = run_checks(settings_for(model_dir), machine=quiet_machine(tmp_path), environ={})
    text = doctor.format_table(checks)
    lines = text.splitlines()
    camera = next(i for i, line in enumerate(lines) if line.split()[1:2] == ["cameras"])
    assert lines[camera].startswith("warn") and "no V4L2 camera" in lines[camera]
    assert lines[camera + 1].strip().startswith("fix: plug in a USB webcam")
    assert lines[-1] == "the kiosk can run on the CPU at least (1 warning)"


def test_usb_2_is_a_warning_and_usb_3_is_ok(tmp_path, model_dir):
    sysfs = tmp_path / "sys"
    usb_device(sysfs, "2-1", speed="480")
    usb_device(sysfs, "1-1", ids=("046d", "0825"), speed="480")  # a webcam: not a Coral
    machine = quiet_machine(tmp_path)
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["edgetpu_usb"]
    assert row.status == WARN
    assert "usb:2-1 (18d1:9302" in row.detail and "480 Mbit/s" in row.detail
    assert "usb:1-1" not in row.detail
    assert "USB 3 port" in row.fix

    (sysfs / "2-1" / "speed").write_text("5000\n")
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["edgetpu_usb"]
    assert row.status == OK and "USB 3 (5000 Mbit/s)" in row.detail


def test_usb_accelerator_the_service_user_cannot_open_gets_the_udev_fix(tmp_path, model_dir):
    usb_device(tmp_path / "sys", "2-1", ids=("1a6e", "089a"), speed="5000", bus=2, num=7)
    node = tmp_path / "dev" / "bus" / "usb" / "002" / "007"
    node.parent.mkdir(parents=True)
    node.write_bytes(b"")
    os.chmod(node, 0o600)
    # as root, the question is whether the service user may use the node; it has no group
    machine = quiet_machine(tmp_path, euid=0, user_groups=lambda name: ["teachable", "video"])
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["edgetpu_usb"]
    assert row.status == WARN
    assert "firmware not loaded yet" in row.detail
    assert f"{node} is not readable and writable" in row.detail
    assert "99-coral-usb.rules" in row.fix and "usermod -aG plugdev teachable" in row.fix

    os.chmod(node, 0o666)
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["edgetpu_usb"]
    assert row.status == OK


def test_pcie_apex_without_permission_gets_the_apex_group_fix(tmp_path, model_dir):
    node = tmp_path / "dev" / "apex_0"
    (tmp_path / "dev").mkdir()
    node.write_bytes(b"")
    os.chmod(node, 0o600)
    (tmp_path / "modules").write_text("apex 24576 0 - Live 0x0\ngasket 98304 1 apex, Live 0x0\n")
    machine = quiet_machine(tmp_path, euid=0, user_groups=lambda name: ["teachable", "video"])
    checks = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))
    row = checks["edgetpu_pcie"]
    assert row.status == WARN
    assert "driver apex, gasket loaded" in row.detail and "not readable and writable" in row.detail
    assert "usermod -aG apex teachable" in row.fix and 'GROUP="apex"' in row.fix
    # the service user then also lacks the apex (and plugdev) group
    user = checks["service_user"]
    assert user.status == WARN and "not in plugdev, apex" in user.detail
    assert user.fix.startswith("sudo usermod -aG plugdev,apex teachable")
    # the Edge TPU counts as present: the probe is suggested, the kiosk still runs on the CPU
    assert (
        checks["edgetpu_probe"].status == WARN and "--probe-edgetpu" in checks["edgetpu_probe"].fix
    )
    assert doctor.can_run(checks.values())


def test_apex_driver_without_a_device_is_a_warning(tmp_path, model_dir):
    (tmp_path / "module" / "apex").mkdir(parents=True)
    row = by_name(run_checks(settings_for(model_dir), machine=quiet_machine(tmp_path), environ={}))[
        "edgetpu_pcie"
    ]
    assert row.status == WARN and "no " in row.detail and "lspci" in row.fix


def test_model_missing_in_a_new_data_dir_names_the_mirror_command(tmp_path, shared_dir):
    data_dir, mirror = tmp_path / "new-data", shared_dir / "models"
    checks = by_name(
        run_checks(
            settings_for(data_dir, mirror=mirror), machine=quiet_machine(tmp_path), environ={}
        )
    )
    row = checks["model_cpu"]
    assert row.status == WARN and f"the mirror {mirror} has it" in row.detail
    assert f"-m server.models fetch --mirror {mirror} --data-dir {data_dir} --no-download" in (
        row.fix
    )
    assert not data_dir.exists(), "the doctor must not copy (or create) anything"
    assert checks["model_edgetpu"].status == OK  # no Edge TPU: not needed


def test_a_model_fetched_elsewhere_on_the_machine_is_found_not_downloaded(tmp_path, model_dir):
    """Another kiosk's cache (here the fixture's) holds both models: the fix copies from it."""
    data_dir = tmp_path / "new-data"
    machine = quiet_machine(tmp_path, model_places=[tmp_path / "nothing", model_dir / "models"])
    row = by_name(run_checks(settings_for(data_dir), machine=machine, environ={}))["model_cpu"]
    assert row.status == WARN
    assert str(model_dir / "models" / models.EXTRACTOR_CPU.filename) in row.detail
    words = row.fix.split()
    assert words[words.index("--mirror") + 1] == str(model_dir / "models")
    assert words[words.index("--data-dir") + 1] == str(data_dir)
    assert "--no-download" in words and "--cpu-only" not in words


def test_exit_1_when_the_cpu_model_is_nowhere(tmp_path, capsys):
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    code = doctor.main(
        ["--json", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        machine=quiet_machine(tmp_path),
        environ={models.MIRROR_ENV: str(empty_mirror)},
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ok"] is False
    rows = {c["name"]: c for c in report["checks"]}
    assert rows["model_cpu"]["status"] == FAIL
    assert f"nor in the mirror {empty_mirror}" in rows["model_cpu"]["detail"]
    assert "server.models fetch" in rows["model_cpu"]["fix"]
    assert models.EXTRACTOR_CPU.sha256 in rows["model_cpu"]["fix"]
    assert [name for name, c in rows.items() if c["status"] == FAIL] == ["model_cpu"]


def test_the_probe_row_reports_a_pass_and_a_crash(tmp_path, model_dir):
    usb_device(tmp_path / "sys", "2-1")
    calls = []

    def passing(**kwargs):
        calls.append(kwargs)
        return ProbeResult(
            "ok", "", "tflite_runtime", "2.17.1", "libedgetpu.so.1", "16.0", "usb:2-1", 3.2, 0.9991
        )

    machine = quiet_machine(tmp_path)
    lib = tmp_path / "libedgetpu.so.1"
    settings = settings_for(model_dir)
    row = by_name(
        run_checks(settings, machine=machine, environ={}, probe=passing, edgetpu_lib=lib)
    )["edgetpu_probe"]
    assert row.status == OK
    assert "3.2 ms per inference" in row.detail and "0.9991" in row.detail
    assert calls[0]["library"] == str(lib) and calls[0]["data_dir"] == settings.data_dir

    def crashing(**kwargs):
        return ProbeResult(
            "crashed",
            "libedgetpu 16.0 crashed with tflite_runtime 2.17.1: install the matching pair",
            runtime="tflite_runtime",
            signal="SIGSEGV",
        )

    row = by_name(run_checks(settings, machine=machine, environ={}, probe=crashing))[
        "edgetpu_probe"
    ]
    assert row.status == WARN and "crashed, SIGSEGV" in row.detail
    assert row.fix.startswith("libedgetpu 16.0 crashed")


def test_libedgetpu_is_found_through_ldconfig_and_asked_in_a_child(tmp_path, model_dir):
    lib = "/usr/lib/x86_64-linux-gnu/libedgetpu.so.1"
    commands = []

    def run(cmd, timeout=10.0):
        commands.append(cmd)
        if cmd[-1] == "-p":
            out = f"\tlibedgetpu.so.1 (libc6,x86-64) => {lib}\n\tlibc.so.6 (libc6) => /x\n"
            return subprocess.CompletedProcess(cmd, 0, out, "")
        if cmd[0] == sys.executable:
            return subprocess.CompletedProcess(cmd, -11, "", "")
        return subprocess.CompletedProcess(cmd, 1, "", "")

    machine = quiet_machine(tmp_path, run=run, which=lambda name: f"/sbin/{name}")
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["libedgetpu"]
    assert row.status == WARN and f"{lib} loading it killed the child process (SIGSEGV)" in (
        row.detail
    )
    assert [sys.executable, "-c", doctor._VERSION_CHILD, lib] in commands


def test_the_version_child_really_runs_apart():
    """A library without ``edgetpu_version`` (libc): the child says so, this process lives on."""
    version, problem = doctor.edgetpu_library_version(Machine(), "libc.so.6")
    assert version == ""
    assert problem.startswith("cannot be loaded") and "edgetpu_version" in problem


def test_database_integrity_ok_and_damaged(tmp_path, model_dir):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = sqlite3.connect(data_dir / "teachable.sqlite3")
    db.execute("CREATE TABLE classes (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()
    machine = quiet_machine(tmp_path, model_places=[model_dir / "models"])
    row = by_name(run_checks(settings_for(data_dir), machine=machine, environ={}))["database"]
    assert row.status == OK and "1 tables, integrity ok" in row.detail

    (data_dir / "teachable.sqlite3").write_bytes(b"this is not SQLite" * 100)
    checks = run_checks(settings_for(data_dir), machine=machine, environ={})
    row = by_name(checks)["database"]
    assert row.status == FAIL and "is damaged" in row.detail and ".damaged" in row.fix
    assert not doctor.can_run(checks)


def test_port_in_use_is_the_kiosk_itself_or_another_program(tmp_path, model_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = Settings(data_dir=model_dir, host="127.0.0.1", port=port)
        asked = []

        def kiosk(url):
            asked.append(url)
            return {"status": "ok", "backend": "cpu", "camera": "online"}

        machine = quiet_machine(tmp_path, http_get=kiosk)
        row = by_name(run_checks(settings, machine=machine, environ={}))["port"]
        assert row.status == OK and "the kiosk itself" in row.detail and "backend cpu" in row.detail
        assert asked == [f"http://127.0.0.1:{port}/healthz"]

        machine = quiet_machine(tmp_path, http_get=lambda url: None)
        row = by_name(run_checks(settings, machine=machine, environ={}))["port"]
        assert row.status == FAIL and "another program" in row.detail
        assert f"sport = :{port}" in row.fix


def test_systemd_unit_disabled_gets_the_enable_command(tmp_path, model_dir):
    (tmp_path / "systemd").mkdir()

    def run(cmd, timeout=10.0):
        state = {"is-enabled": "disabled", "is-active": "inactive"}[cmd[1]]
        return subprocess.CompletedProcess(cmd, 1, state + "\n", "")

    machine = quiet_machine(
        tmp_path, systemd_dir=str(tmp_path / "systemd"), run=run, which=lambda n: f"/bin/{n}"
    )
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["systemd"]
    assert row.status == WARN and "teachable.service disabled/inactive" in row.detail
    assert row.fix == "sudo systemctl enable --now teachable.service"


def test_cameras_one_working_node_is_enough(tmp_path, model_dir):
    (tmp_path / "dev").mkdir()
    for n in (0, 1):
        (tmp_path / "dev" / f"video{n}").write_bytes(b"")

    def open_camera(path):
        return ("", "640x480") if path.endswith("video0") else ("does not open", "")

    machine = quiet_machine(tmp_path, open_camera=open_camera)
    row = by_name(run_checks(settings_for(model_dir), machine=machine, environ={}))["cameras"]
    assert (
        row.status == OK
        and "video0 640x480" in row.detail
        and "video1: does not open" in (row.detail)
    )


def test_a_check_that_raises_becomes_a_warning_row(tmp_path, model_dir):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "video0").write_bytes(b"")

    def broken(path):
        raise RuntimeError("driver exploded")

    machine = quiet_machine(tmp_path, open_camera=broken)
    checks = run_checks(settings_for(model_dir), machine=machine, environ={})
    assert [c.name for c in checks] == list(ROWS)
    row = by_name(checks)["cameras"]
    assert row == Check(
        "cameras", WARN, "the check itself failed: RuntimeError: driver exploded", "report it"
    )


def test_bad_settings_fail_with_the_message(tmp_path, capsys):
    code = doctor.main(
        ["--json", "--port", "99999", "--data-dir", str(tmp_path)],
        machine=quiet_machine(tmp_path),
        environ={},
    )
    rows = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert rows["settings"]["status"] == FAIL
    assert rows["settings"]["detail"] == "--port must be between 1 and 65535"


def test_the_real_probe_of_a_segfaulting_library_reports_the_crash(tmp_path, model_dir):
    lib = standin.build("segv", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "server.doctor", "--json", "--probe-edgetpu"]
        + ["--edgetpu-lib", str(lib), "--data-dir", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout)
    probe_row = next(c for c in report["checks"] if c["name"] == "edgetpu_probe")
    assert probe_row["status"] == "warn" and "crashed, SIGSEGV" in probe_row["detail"]
    assert "install-edgetpu.sh" in probe_row["fix"]
    assert done.returncode == 0 and report["ok"]  # the CPU still serves
