"""A static HTTP server on 127.0.0.1 serving a recorded HKMA site (demo, tests, benchmark).

Paths map onto a folder: `/eng/x/` serves `x/index.html`. The served folder can be switched
between days, and single paths overridden (a status, a body, a delay) to act out failures.
It counts requests and bytes so a benchmark can report what a run cost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "text/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".pdf": "application/pdf",
}


@dataclass
class Override:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0
    location: str | None = None  # a Location header, for redirects


class RecordedSite:
    """Context manager: `with RecordedSite(folder) as site: site.base_url ...`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.overrides: dict[str, Override] = {}
        self.requests = 0
        self.bytes_sent = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: tests and the demo print their own summaries

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordedSite:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset_counters(self) -> None:
        with self._lock:
            self.requests = 0
            self.bytes_sent = 0
            self.paths = []

    def _file_for(self, path: str) -> Path | None:
        relative = unquote(path).lstrip("/")
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        override = self.overrides.get(path)
        location = override.location if override else None
        if override is not None:
            status, body, content_type = override.status, override.body, override.content_type
            if override.delay:
                time.sleep(override.delay)
        else:
            file = self._file_for(path)
            if file is None:
                status, body, content_type = 404, b"Not Found", "text/plain"
            else:
                body = file.read_bytes()
                status = 200
                content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        with self._lock:
            self.requests += 1
            self.bytes_sent += len(body)
            self.paths.append(path)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            if location:
                handler.send_header("Location", location)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to tell it
