"""A small threaded TCP proxy on loopback, to take a broker away from its clients and give it back.

``close()`` stops accepting and drops every open connection, so clients see the broker vanish;
``open()`` listens again on the same port, so their reconnects find it where it was.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

ACCEPT_POLL_S = 0.1
CHUNK = 65536


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.delay_s = 0.0  # a pause per chunk, to make a fast loopback peer as slow as a far one
        self.open()

    def open(self) -> None:
        """Listen (again) on 127.0.0.1, on the port of the first ``open`` if there was one."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_S)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopped = threading.Event()
        self._start(self._accept, listener, self._stopped)

    def close(self) -> None:
        """Stop accepting and drop every open connection; clients get resets, then refusals."""
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            dropped, self._connections = self._connections, set()
        for conn in dropped:
            _drop(conn)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connect(client, stopped)

    def _connect(self, client: socket.socket, stopped: threading.Event) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _drop(client)
            return
        for conn in (client, upstream):
            conn.settimeout(None)
        with self._lock:
            if stopped.is_set():
                _drop(client)
                _drop(upstream)
                return
            self._connections.update((client, upstream))
        self._start(self._pump, client, upstream)
        self._start(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes one way until either side closes; then close both."""
        try:
            while chunk := source.recv(CHUNK):
                if self.delay_s:
                    time.sleep(self.delay_s)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                _drop(conn)
            with self._lock:
                self._connections.difference_update((source, sink))


def _drop(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
