"""gunicorn's threaded worker, with finished connections closed off its main loop."""

from __future__ import annotations

import threading
from concurrent import futures

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def _closed(graceful: bool = False) -> None:
    """A connection's close once it is closed: nothing left to do."""


class KioskThreadWorker(ThreadWorker):
    """``gthread``, but a finished connection is closed by the thread that served it.

    gunicorn 27 closes a finished connection "gracefully" (RFC 9112 section 9.6: shut down
    writing, then read until the peer closes, for up to 2 s) in ``finish_request``, on the
    thread that accepts connections. A client that leaves its end open (a fuzzer, a phone that
    dropped off the network, a socket the server refused) then stopped the kiosk from accepting
    anybody, page loads and ``/healthz`` included, for 2 s. Here the pool's thread closes it,
    and the main loop's close becomes a no-op. A WebSocket (the app took the socket over and
    ended with ``StopIteration``) has no HTTP response left to protect: it is closed at once,
    so its pool thread is free again at once, not 2 s later. Versions
    whose ``handle`` answers differently (a tuple, before gunicorn 24) are left as they are.
    """

    def get_thread_pool(self):
        """The pool with all its threads started now. ``ThreadPoolExecutor`` starts one the
        first time no thread is idle, and keeps it: the thread count crept up (27 → 29 in the
        soak) whenever browsers reconnecting overlapped, instead of staying flat."""
        pool = super().get_thread_pool()
        started = threading.Barrier(self.cfg.threads)
        # each holds its thread until all have started, so every submit starts a new one
        waits = [pool.submit(started.wait, 30) for _ in range(self.cfg.threads)]
        futures.wait(waits, timeout=35)
        failed = [w for w in waits if not w.done() or w.exception() is not None]
        if failed:  # the pool still starts threads as it needs them
            self.log.warning("started %d of %d threads", len(waits) - len(failed), len(waits))
        return pool

    def handle_request(self, req, conn):
        try:
            return super().handle_request(req, conn)
        except StopIteration:
            conn.taken_over = True  # a WebSocket, closed by its own protocol
            raise

    def handle(self, conn):
        result = super().handle(conn)
        if result is None or result is False:  # the connection ends (not kept alive, not deferred)
            try:
                if getattr(conn, "taken_over", False):
                    util.close(conn.sock)
                else:
                    conn.close(graceful=True)
            except OSError as e:  # closed already (gunicorn does so on an SSL EOF)
                self.log.debug("closing a finished connection: %s", e)
            conn.close = _closed
        return result
