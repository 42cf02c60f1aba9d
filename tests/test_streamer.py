"""The streamer's pacing, with a fake Socket.IO server and a fake clock."""

import numpy as np

from server.pipeline import Published
from server.settings import Settings
from server.web.streamer import Streamer


class FakeServer:
    """Records emits; acknowledges every frame at once unless told not to."""

    def __init__(self, ack=True):
        self.ack, self.sent = ack, []

    def emit(self, event, data=None, to=None, skip_sid=None, callback=None):
        self.sent.append((event, to, tuple(skip_sid or ())))
        if callback is not None and self.ack:
            callback(True)


def frames_sent(server, sid):
    return sum(1 for event, to, _ in server.sent if event == "frame" and to == sid)


def published(index):
    return Published(index, np.zeros((48, 64, 3), np.uint8), {"frame": index})


def streaming(tmp_path, server):
    """A streamer on ``server`` with a clock the test moves: (streamer, now)."""
    now = [0.0]
    return Streamer(None, server, Settings(data_dir=tmp_path), clock=lambda: now[0]), now


def send_at_30_fps(streamer, now, indices):
    for index in indices:
        streamer._send(published(index))
        now[0] += 1 / 30


def test_a_camera_faster_than_stream_fps_is_streamed_at_stream_fps(tmp_path):
    server = FakeServer()
    streamer, now = streaming(tmp_path, server)
    streamer.add("a")
    for index in range(130):  # 2 s of a 65 fps camera
        streamer._send(published(index))
        now[0] += 1 / 65
    assert 60 <= frames_sent(server, "a") <= 70  # ~33 a second, not 65
    predictions = [e for e in server.sent if e[0] == "prediction"]
    assert len(predictions) == frames_sent(server, "a")  # with each frame, not more


def test_a_30_fps_camera_loses_no_frame_to_the_cap_despite_jitter(tmp_path):
    server = FakeServer()
    streamer, now = streaming(tmp_path, server)
    streamer.add("a")
    rng = np.random.default_rng(0)
    for index in range(300):  # each frame up to 15 ms early or late: a busy machine
        now[0] = index / 30 + rng.uniform(-0.015, 0.015)
        streamer._send(published(index))
    assert frames_sent(server, "a") == 300


def test_a_client_with_two_unacknowledged_frames_gets_no_more_nor_predictions(tmp_path):
    server = FakeServer(ack=False)
    streamer, now = streaming(tmp_path, server)
    streamer.add("slow")
    send_at_30_fps(streamer, now, range(10))
    assert frames_sent(server, "slow") == 2
    assert [e[0] for e in server.sent] == ["prediction", "frame"] * 2  # then nothing at all


def test_the_prediction_skips_only_the_clients_that_are_behind(tmp_path):
    server = FakeServer(ack=False)
    streamer, now = streaming(tmp_path, server)
    streamer.add("slow")
    send_at_30_fps(streamer, now, range(2))
    server.ack = True
    streamer.add("fast")
    streamer._send(published(2))
    assert server.sent[-2:] == [("prediction", None, ("slow",)), ("frame", "fast", ())]
