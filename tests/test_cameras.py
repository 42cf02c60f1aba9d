"""Camera sources: latest-frame semantics, each source, and fault handling (no camera needed).

Faults are injected through the hooks the real sources implement (``FakeSource``). Waits are
upper bounds only: the tests assert states, never how fast they were reached.
"""

import io
import logging
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from server.hw import cameras
from server.hw.cameras import BrowserCamera, Camera, SyntheticCamera, open_camera

STALL = 1.0  # a short stall timeout keeps the fault tests quick
WAIT = 6.0  # the longest any state may take to arrive

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def wait_until(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def camera_threads():
    return [t for t in threading.enumerate() if t.name in ("camera-reader", "camera-monitor")]


class FakeSource(Camera):
    """A source whose reads switch between normal frames and each kind of fault.

    Modes: ``normal``; ``raise``; ``none``; ``hang`` (blocks until ``_close()``, as a capture
    released from another thread does); ``stuck`` (blocks until the test sets ``release``,
    whatever ``_close()`` does); ``frozen`` (the same array every time).
    """

    def __init__(self, stall_timeout=STALL):
        super().__init__("fake", fps=100.0, stall_timeout=stall_timeout)
        self.mode = "normal"
        self.closed = threading.Event()
        self.release = threading.Event()
        self._count = 0
        self._frozen = np.full((4, 4, 3), 7, np.uint8)

    def _open(self):
        self.closed.clear()

    def _read(self):
        mode = self.mode
        if mode == "raise":
            raise RuntimeError("sensor on fire")
        if mode == "none":
            return None
        if mode == "hang":
            self.closed.wait(3 * WAIT)
            return None
        if mode == "stuck":
            self.release.wait(3 * WAIT)
            return None
        if mode == "frozen":
            return self._frozen
        self._count += 1
        image = np.zeros((4, 4, 3), np.uint8)
        image.reshape(-1)[:8] = np.frombuffer(self._count.to_bytes(8, "little"), np.uint8)
        return image

    def _close(self):
        self.closed.set()


@pytest.fixture
def started():
    """Starts cameras for a test and stops them all after it, whatever happened."""
    running = []

    def start(camera):
        running.append(camera)
        camera.start()
        return camera

    yield start
    for camera in running:
        camera.stop()


def png(colour, size=(8, 6)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def write_png(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(colour))


# -- latest-frame semantics --------------------------------------------------------------------


def test_a_slow_consumer_gets_the_newest_frame_not_a_backlog(started):
    camera = started(FakeSource())
    first = camera.latest(timeout=WAIT)
    assert first is not None
    assert wait_until(lambda: camera.latest(timeout=0).index >= first.index + 5)
    frame = camera.latest(after=first.index, timeout=WAIT)
    assert frame.index >= first.index + 5  # the frames in between were skipped
    assert frame.time >= first.time
    assert frame.image.shape == (4, 4, 3) and frame.image.dtype == np.uint8
    assert not frame.image.flags.writeable


def test_latest_after_waits_for_a_newer_frame_and_times_out_without_one(started):
    camera = FakeSource()
    assert camera.latest(timeout=0.05) is None  # not started: nothing to give
    started(camera)
    newest = camera.latest(timeout=WAIT)
    newer = camera.latest(after=newest.index, timeout=WAIT)
    assert newer is not None and newer.index > newest.index
    assert camera.latest(after=newer.index + 10**6, timeout=0.05) is None
    assert camera.fps > 0
    assert camera.describe()["status"] == "online"


def test_start_is_idempotent_and_stop_ends_every_camera_thread(started):
    camera = FakeSource()
    camera.start()
    camera.start()
    assert camera.latest(timeout=WAIT) is not None
    assert sorted(t.name for t in camera_threads()) == ["camera-monitor", "camera-reader"]
    camera.stop()
    assert camera_threads() == []
    assert camera.status == "offline"
    last = camera.latest(timeout=0)
    camera.start()  # a stopped camera starts again; indices keep increasing
    assert camera.latest(after=last.index, timeout=WAIT) is not None
    camera.stop()
    assert camera_threads() == []

    hanging = FakeSource()
    hanging.start()
    assert hanging.latest(timeout=WAIT) is not None
    hanging.mode = "hang"
    hanging.stop()  # closes the device to unblock the read
    assert camera_threads() == []


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, words",
    [
        ("raise", "sensor on fire"),
        ("none", "returned no frame"),
        ("hang", "stopped responding"),
        ("frozen", "frozen"),
    ],
)
def test_a_fault_turns_the_camera_offline_with_a_reason_and_it_recovers(mode, words, started):
    before = threading.active_count()
    camera = FakeSource()
    changes = []
    camera.on_status = lambda status, reason: changes.append((status, reason))
    started(camera)
    assert wait_until(lambda: camera.status == "online")

    camera.mode = mode
    assert wait_until(lambda: camera.status == "offline" and words in camera.status_reason)
    assert any(s == "offline" and words in r for s, r in changes)

    camera.mode = "normal"
    camera.closed.set()  # lets a hanging read return
    assert wait_until(lambda: camera.status == "online")
    resumed = camera.latest(timeout=WAIT)
    assert camera.latest(after=resumed.index, timeout=WAIT) is not None
    assert changes[-1] == ("online", "")
    assert wait_until(lambda: threading.active_count() - before <= 2)


@pytest.mark.parametrize(
    "mode, words", [("raise", "sensor on fire"), ("none", "returned no frame")]
)
def test_a_failed_read_is_reported_at_once_not_after_the_stall_timeout(mode, words, started):
    camera = started(FakeSource(stall_timeout=60 * WAIT))  # silence alone would take minutes
    assert wait_until(lambda: camera.status == "online")
    camera.mode = mode
    assert wait_until(lambda: camera.status == "offline" and words in camera.status_reason)
    camera.mode = "normal"
    assert wait_until(lambda: camera.status == "online")


def test_every_fault_is_shown_within_3_s_by_default():
    # what the README promises: the slowest detection (silence, a hang, a frozen image) leaves
    # the pipeline and the clients time to hear of it
    assert cameras.STALL_TIMEOUT + cameras.MONITOR_PERIOD <= 2.5
    assert Camera("any").stall_timeout == cameras.STALL_TIMEOUT
    assert open_camera("synthetic").stall_timeout == cameras.STALL_TIMEOUT


class SlowToOpen(FakeSource):
    """Opens in ``open_s`` seconds; with ``hang_once`` the first open blocks until closed."""

    def __init__(self, open_s=0.0, hang_once=False):
        super().__init__()
        self.open_s, self.hang_once, self.opens = open_s, hang_once, 0

    def _open(self):
        self.opens += 1
        super()._open()
        if self.hang_once and self.opens == 1:
            self.closed.wait(3 * WAIT)
        time.sleep(self.open_s)


def test_a_webcam_slow_to_open_is_given_time_and_opened_once(started):
    camera = SlowToOpen(open_s=1.5 * STALL)  # longer than a read may take, shorter than an open
    changes = []
    camera.on_status = lambda status, reason: changes.append((status, reason))
    started(camera)
    assert wait_until(lambda: camera.status == "online")
    assert camera.opens == 1
    assert changes == [("online", "")]  # never offline on the way


def test_an_open_that_hangs_is_closed_and_retried(started, monkeypatch):
    monkeypatch.setattr(cameras.base, "OPEN_TIMEOUT", 2 * STALL)  # the reader reads it there
    camera = SlowToOpen(hang_once=True)
    changes = []
    camera.on_status = lambda status, reason: changes.append((status, reason))
    started(camera)
    assert wait_until(lambda: camera.status == "online")
    assert camera.opens == 2
    assert any(s == "offline" and "stopped responding" in r for s, r in changes)


def test_a_reader_stuck_in_the_driver_is_abandoned_once_never_piled_up(started, caplog):
    before = threading.active_count()
    camera = started(FakeSource(stall_timeout=0.5))
    assert wait_until(lambda: camera.status == "online")

    camera.mode = "stuck"  # closing the device does not unblock this read
    assert wait_until(lambda: "stopped responding" in camera.status_reason)
    assert wait_until(lambda: "abandoning" in caplog.text)
    readers = []
    deadline = time.monotonic() + 4 * camera.stall_timeout  # the new reader gets stuck too
    while time.monotonic() < deadline:
        readers.append(sum(t.name == "camera-reader" for t in threading.enumerate()))
        time.sleep(0.05)
    assert max(readers) == 2  # the abandoned one and the current one, no more
    assert camera.status == "offline"

    camera.mode = "normal"
    camera.release.set()
    assert wait_until(lambda: camera.status == "online")
    assert camera.latest(after=camera.latest(timeout=WAIT).index, timeout=WAIT) is not None
    assert wait_until(lambda: threading.active_count() - before <= 2)


def test_a_source_that_cannot_open_is_offline_and_retried_until_it_can(started):
    class Unplugged(FakeSource):
        plugged = False

        def _open(self):
            if not self.plugged:
                raise cameras.CameraError("camera unplugged: /dev/video9")
            super()._open()

    camera = started(Unplugged())
    assert wait_until(lambda: camera.status_reason == "camera unplugged: /dev/video9")
    assert camera.status == "offline"
    camera.plugged = True
    assert wait_until(lambda: camera.status == "online")


def test_a_failing_status_callback_does_not_stop_the_camera(started, caplog):
    camera = FakeSource()
    camera.on_status = lambda status, reason: 1 / 0
    started(camera)
    first = camera.latest(timeout=WAIT)
    assert camera.latest(after=first.index, timeout=WAIT) is not None
    assert "status callback failed" in caplog.text


# -- folder ------------------------------------------------------------------------------------


def colours(camera, count):
    camera._open()
    return [tuple(camera._read()[0, 0].tolist()) for _ in range(count)]


def test_folder_plays_sub_folders_in_sorted_order_and_loops(tmp_path):
    write_png(tmp_path / "b" / "1.png", BLUE)
    write_png(tmp_path / "a" / "2.png", GREEN)
    write_png(tmp_path / "a" / "1.png", RED)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    write_png(tmp_path / ".hidden" / "0.png", (9, 9, 9))
    camera = open_camera(f"folder:{tmp_path}")
    assert colours(camera, 7) == [RED, GREEN, BLUE, RED, GREEN, BLUE, RED]


def test_folder_keeps_rgb_order_and_size(tmp_path):
    write_png(tmp_path / "x.png", (200, 30, 90))
    camera = open_camera(f"folder:{tmp_path}")
    camera._open()
    image = camera._read()
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [200, 30, 90]


def test_folder_skips_a_corrupt_file_with_one_warning(tmp_path, caplog):
    write_png(tmp_path / "1.png", RED)
    (tmp_path / "2.png").write_bytes(b"this is no png")
    write_png(tmp_path / "3.png", BLUE)
    camera = open_camera(f"folder:{tmp_path}")
    with caplog.at_level(logging.WARNING, logger="server.hw.cameras"):
        assert colours(camera, 6) == [RED, BLUE] * 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2.png" in warnings[0].getMessage()


def test_the_folder_camera_takes_the_same_image_files_as_the_offline_tools(tmp_path):
    from server import datasets

    formats = {".bmp": "BMP", ".gif": "GIF", ".JPG": "JPEG", ".png": "PNG", ".tif": "TIFF"}
    formats.update({".jpeg": "JPEG", ".tiff": "TIFF", ".webp": "WEBP"})
    (tmp_path / "a").mkdir()
    for suffix, fmt in formats.items():
        Image.new("RGB", (8, 6), RED).save(tmp_path / "a" / f"x{suffix}", fmt)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b").mkdir()
    write_png(tmp_path / "b" / "only.png", BLUE)
    camera = open_camera(f"folder:{tmp_path}")
    decoded = colours(camera, len(formats))  # every one decodes (JPEG and WebP lossily)
    assert all(r > 240 and g < 16 and b < 16 for r, g, b in decoded), decoded
    played = {p.name for p in camera._files if p.parent.name == "a"}
    listed = {p.name for p in datasets.scan(tmp_path).files[0]}
    assert played == listed == {f"x{suffix}" for suffix in formats}


def test_folder_camera_streams_when_started(tmp_path, started):
    write_png(tmp_path / "only.png", GREEN)  # one image: repeated, never taken for frozen
    camera = started(open_camera(f"folder:{tmp_path}", fps=50))
    first = camera.latest(timeout=WAIT)
    assert first.image[0, 0].tolist() == list(GREEN)
    assert camera.latest(after=first.index + 3, timeout=WAIT) is not None
    assert camera.status == "online"


# -- synthetic and browser -----------------------------------------------------------------------


def test_synthetic_scene_moves_at_the_requested_size(started):
    camera = started(open_camera("synthetic", fps=50, size=(64, 48)))
    first = camera.latest(timeout=WAIT)
    later = camera.latest(after=first.index + 4, timeout=WAIT)
    assert first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8
    assert not np.array_equal(first.image, later.image)
    assert wait_until(lambda: camera.status == "online")
    assert camera.notice == ""


def test_browser_push_decodes_rgb_and_bad_bytes_keep_the_previous_frame():
    camera = open_camera("browser")
    assert isinstance(camera, BrowserCamera)
    camera.push(png(RED, size=(16, 12)))
    frame = camera.latest(timeout=0)
    assert frame.image.shape == (12, 16, 3)
    assert frame.image[0, 0].tolist() == list(RED)

    jpeg = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(jpeg, "JPEG")
    bad = [
        (b"not an image", "not a JPEG, PNG or WebP"),
        (jpeg.getvalue()[:2000], "not a readable image"),  # fails when decoded, not opened
        (png(RED, size=(4097, 1)), "4097x1 pixels"),
        (b"\xff" * (2 * 1024 * 1024 + 1), "at most 2 MB"),
    ]
    for data, words in bad:
        with pytest.raises(ValueError, match=words):
            camera.push(data)
    assert camera.latest(timeout=0).index == frame.index

    camera.push(jpeg.getvalue())
    assert camera.latest(after=frame.index, timeout=0) is not None


def test_browser_camera_is_offline_until_the_page_sends_frames(started):
    camera = started(BrowserCamera(stall_timeout=STALL))
    assert wait_until(lambda: camera.status == "offline")
    assert "browser" in camera.status_reason
    camera.push(png(BLUE))
    assert camera.status == "online"
    assert [t.name for t in camera_threads()] == ["camera-monitor"]


# -- video file and webcam -----------------------------------------------------------------------


def test_video_file_plays_rgb_frames_and_loops(tmp_path, started):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed")
    path = tmp_path / "clip.avi"
    palette = [RED, GREEN, (255, 255, 0), (128, 128, 128)]  # a red/blue swap would show
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 24))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write an MJPG .avi here")
    for colour in palette:
        writer.write(np.full((24, 32, 3), colour[::-1], np.uint8))  # OpenCV writes BGR
    writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        pytest.skip("OpenCV wrote no video file here")

    camera = started(open_camera(f"file:{path}"))
    seen, last = set(), -1
    deadline = time.monotonic() + WAIT
    while (len(seen) < len(palette) or last < 3 * len(palette)) and time.monotonic() < deadline:
        frame = camera.latest(after=last, timeout=WAIT)
        assert frame is not None
        last = frame.index
        distances = [np.abs(frame.image.mean(axis=(0, 1)) - c).max() for c in palette]
        assert min(distances) < 40, frame.image.mean(axis=(0, 1))
        seen.add(int(np.argmin(distances)))
    assert seen == set(range(len(palette)))
    assert last >= 3 * len(palette)  # more frames than the file holds: it looped


@pytest.mark.camera
def test_a_real_webcam_delivers_rgb_frames(started):
    if not cameras.video_devices():
        pytest.skip("no /dev/video* device: plug in a USB webcam to run this test")
    pytest.importorskip("cv2", reason="OpenCV is not installed")
    camera = open_camera("auto")
    if camera.notice:
        pytest.skip(camera.notice)
    started(camera)
    frame = camera.latest(timeout=10)
    assert frame is not None and frame.image.ndim == 3 and frame.image.shape[2] == 3
    assert camera.status == "online"


# -- the factory ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, words",
    [
        ("nope:x", "unknown camera 'nope:x'"),
        ("", "unknown camera ''"),
        ("folder:/does/not/exist", "image folder not found: /does/not/exist"),
        ("folder:", "folder: needs a folder"),
        ("file:", "file: needs a video"),
        ("file:/does/not/exist.mp4", "video file not found: /does/not/exist.mp4"),
    ],
)
def test_bad_specs_raise_a_one_line_value_error(spec, words):
    with pytest.raises(ValueError, match=words) as raised:
        open_camera(spec)
    assert "\n" not in str(raised.value)


def test_a_folder_without_images_or_a_file_that_is_no_video_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no images"):
        open_camera(f"folder:{tmp_path}")
    pytest.importorskip("cv2", reason="OpenCV is not installed")
    with pytest.raises(ValueError, match="cannot read a video"):
        open_camera(f"file:{tmp_path / 'notes.txt'}")


def test_bad_fps_or_size_is_refused():
    with pytest.raises(ValueError, match="fps"):
        open_camera("synthetic", fps=0)
    with pytest.raises(ValueError, match="size"):
        open_camera("synthetic", size=(0, 480))


def test_auto_without_a_video_device_falls_back_to_synthetic_with_a_notice(caplog):
    camera = open_camera("auto", devices=lambda: [])
    assert isinstance(camera, SyntheticCamera)
    assert "synthetic" in camera.notice and "plug in" in camera.notice
    assert camera.status_reason == camera.notice
    assert camera.notice in caplog.text


def test_auto_skips_a_device_that_does_not_work():
    pytest.importorskip("cv2", reason="OpenCV is not installed")
    camera = open_camera("auto", devices=lambda: ["/dev/video-missing"], stall_timeout=STALL)
    assert isinstance(camera, SyntheticCamera)
    assert "/dev/video-missing" in camera.notice


def test_without_opencv_a_webcam_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now fails
    with pytest.raises(cameras.OpenCVMissing, match="pip install opencv-python-headless"):
        open_camera("0")
    camera = open_camera("auto", devices=lambda: ["/dev/video0"])
    assert isinstance(camera, SyntheticCamera)
    assert "opencv-python-headless" in camera.notice


def test_device_specs_name_the_device_without_opening_it():
    pytest.importorskip("cv2", reason="OpenCV is not installed")
    assert open_camera("0").name == "v4l2:/dev/video0"
    assert open_camera("/dev/video2").name == "v4l2:/dev/video2"
    assert open_camera("v4l2:1").name == "v4l2:/dev/video1"


def test_video_devices_are_in_numeric_order(tmp_path):
    for name in ("video10", "video2", "video0", "vga"):
        (tmp_path / name).touch()
    assert cameras.video_devices(str(tmp_path)) == [
        str(tmp_path / n) for n in ("video0", "video2", "video10")
    ]


def test_a_paced_source_waits_for_its_frame_to_be_taken(started):
    camera = started(SyntheticCamera(fps=1000, size=(32, 24)))
    first = camera.latest(after=-1, timeout=5)
    time.sleep(0.3)  # nobody takes frames meanwhile: at most one new one is made
    second = camera.latest(after=first.index, timeout=5)
    assert 1 <= second.index - first.index <= 2  # ~300 if it ran ahead at 1000 fps
