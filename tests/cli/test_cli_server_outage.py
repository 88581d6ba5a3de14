"""A real MLflow server behind a TCP relay that can be stopped (refuses connections) or frozen
(accepts, never answers): short outages are ridden out, long ones and frozen servers fail in one line."""
import socket
import threading
import time
import urllib.parse

import pytest


class Relay:
    """127.0.0.1:<port> -> the MLflow server; mode "up", "down" (not listening) or "frozen"."""

    def __init__(self, upstream: str):
        u = urllib.parse.urlparse(upstream)
        self.upstream = (u.hostname, u.port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.mode, self.listener, self.conns = "down", None, []
        self.up()

    @property
    def uri(self):
        return f"http://127.0.0.1:{self.port}"

    def up(self, frozen=False):
        self._drop()  # like a restarted server: open connections end
        self.mode = "frozen" if frozen else "up"
        if self.listener is None:
            self.listener = socket.socket()
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(("127.0.0.1", self.port))
            self.listener.listen(16)
            threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self):
        self.mode = "down"
        if self.listener is not None:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; the port is free again
            self.listener.close()
            self.listener = None
        self._drop()

    def _drop(self):
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []

    def _accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.mode == "frozen":
                continue  # keep the socket open and never answer
            upstream = socket.create_connection(self.upstream)
            self.conns.append(upstream)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def relay(mlflow_server, monkeypatch):
    monkeypatch.setenv("CCOMA_MLFLOW_RETRY_WINDOW", "8")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    r = Relay(mlflow_server)
    yield r
    r.down()


def _open_run(relay):
    from ccoma.tracking import Tracker

    tracker = Tracker(relay.uri)
    parent = tracker.evaluate_run(f"outage{relay.port}", "k", backend="ccoma-sim 1.0", budget="smoke")
    return tracker, parent


def test_a_short_outage_is_ridden_out(relay, mlflow_server):
    from ccoma.tracking import Tracker

    _, run = _open_run(relay)
    relay.down()
    threading.Timer(3.0, relay.up).start()  # back within the window
    assert run.log_metrics({"deploy/win_rate": 0.5}, step=7) == 1
    history = Tracker(mlflow_server).client.get_metric_history(run.run_id, "deploy/win_rate")
    assert [(m.step, m.value) for m in history] == [(7, 0.5)]


def test_a_long_outage_fails_in_one_line(relay):
    from ccoma.errors import CcomaError

    _, run = _open_run(relay)
    relay.down()
    start = time.monotonic()
    with pytest.raises(CcomaError, match="unreachable for 8 s") as info:
        run.log_metrics({"deploy/win_rate": 0.5}, step=7)
    assert 4 < time.monotonic() - start < 30 and "\n" not in str(info.value)


def test_a_frozen_server_fails_in_one_line(relay):
    from ccoma.errors import CcomaError

    _, run = _open_run(relay)
    relay.up(frozen=True)
    start = time.monotonic()
    with pytest.raises(CcomaError, match="did not answer within 2 s") as info:
        run.log_metrics({"deploy/win_rate": 0.5}, step=7)
    assert time.monotonic() - start < 30 and "\n" not in str(info.value)
