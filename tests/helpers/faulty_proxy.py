"""A reverse proxy in front of a real MLflow server that breaks chosen requests the way a failing network or
a dying server does, so tests can show what evolora's tracking does then.

Faults, each for the next ``times`` requests whose method and path match:
- ``cut``: the request reaches the server (it takes effect), and the answer is cut off half-way — the client
  sees ``IncompleteRead`` and cannot know whether its call landed;
- ``drop``: the connection is closed before the request is forwarded (it does not take effect).
``down(seconds)`` drops every request for that long. ``fired`` counts the faults dealt per rule.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "upgrade",
}


class FaultyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rules: list[dict] = []
        self.fired: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self._down_until = 0.0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._fault(self.command, self.path)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP | {"host"}}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if fault == "cut":
                    self.send_header("Connection", "close")
                self.end_headers()
                if fault == "cut":  # half the answer, then the connection dies
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, name: str, method: str, path_contains: str, mode: str, times: int = 1) -> None:
        """Break the next ``times`` ``method`` requests whose path contains ``path_contains``."""
        with self._lock:
            self.rules.append(
                {"name": name, "method": method, "path": path_contains, "mode": mode, "left": times}
            )
            self.fired.setdefault(name, 0)

    def down(self, seconds: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def _fault(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests.append((method, path))
            if time.monotonic() < self._down_until:
                return "drop"
            for r in self.rules:
                if r["left"] > 0 and r["method"] == method and r["path"] in path:
                    r["left"] -= 1
                    self.fired[r["name"]] += 1
                    return r["mode"]
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
