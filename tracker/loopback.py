"""An HTTP server on 127.0.0.1 serving a recorded HKMA site (demo, tests, benchmark).

Paths map onto a folder: `/eng/x/` serves `x/index.html`. The served folder can be switched
between days; single paths can be overridden (a status, a body, a delay, a stalled body) or
answered by a function (the fakes of HKMA's JSON APIs). With `validators`, files are served
with ETag and Last-Modified and conditional requests get 304. It counts requests and bytes so
a benchmark can report what a run cost.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "text/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".pdf": "application/pdf",
}


@dataclass
class Override:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0
    location: str | None = None  # a Location header, for redirects
    stall_after: int | None = None  # send this many bytes of the body, then hang for `delay`
    headers: dict[str, str] = field(default_factory=dict)
    sized: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass(frozen=True)
class ServedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[ServedRequest], Override]


class RecordedSite:
    """Context manager: `with RecordedSite(folder) as site: site.base_url ...`."""

    def __init__(self, root: Path, validators: bool = False, host: str = "127.0.0.1") -> None:
        # `host`: another loopback address (127.0.0.2) is another host to a crawler's per-host
        # delay, as HKMA's www, BRDR and API hosts are.
        self.root = Path(root)
        self.validators = validators
        self.overrides: dict[str, Override] = {}
        self.handlers: dict[str, Handler] = {}
        self.fallback: Handler | None = None  # answers what no file or handler does
        self.requests = 0
        self.bytes_sent = 0
        self.paths: list[str] = []
        self.not_modified = 0
        self._lock = threading.Lock()
        site = self

        class RequestHandler(BaseHTTPRequestHandler):
            # Keep-alive, as HKMA's servers do: with HTTP/1.0 a client that reuses a
            # connection can see it closed under a POST, which it may not resend.
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site._serve(self)

            def do_POST(self) -> None:
                site._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: tests and the demo print their own summaries

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)  # type: ignore[arg-type]
                # a client that went away (killed, timed out) is no error of the site's

        self._server = Server((host, 0), RequestHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

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
            self.not_modified = 0
            self.paths = []

    def _file_for(self, path: str) -> Path | None:
        relative = unquote(path).lstrip("/")
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _answer(self, request: ServedRequest) -> Override:
        if request.path in self.handlers:
            return self.handlers[request.path](request)
        if request.path in self.overrides:
            return self.overrides[request.path]
        file = self._file_for(request.path)
        if file is None and self.fallback is not None:
            return self.fallback(request)
        if file is None:
            return Override(status=404, body=b"Not Found", content_type="text/plain")
        body = file.read_bytes()
        answer = Override(body=body, content_type=CONTENT_TYPES.get(file.suffix, "text/plain"))
        if self.validators:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            answer.headers = {
                "ETag": etag,
                "Last-Modified": formatdate(file.stat().st_mtime, usegmt=True),
            }
            if request.headers.get("if-none-match") == etag:
                return Override(status=304, headers=answer.headers)
        return answer

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = ServedRequest(
            handler.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in handler.headers.items()},
            handler.rfile.read(length) if length else b"",
        )
        answer = self._answer(request)
        with self._lock:  # on arrival: a test may act while the answer is delayed
            self.paths.append(request.path)
        if answer.delay and answer.stall_after is None:
            time.sleep(answer.delay)
        body = answer.body if answer.stall_after is None else answer.body[: answer.stall_after]
        with self._lock:
            self.requests += 1
            self.bytes_sent += len(body)
            self.not_modified += answer.status == 304
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            if answer.sized:
                handler.send_header("Content-Length", str(len(answer.body)))
            else:
                handler.close_connection = True
            if answer.location:
                handler.send_header("Location", answer.location)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if answer.status != 304:
                handler.wfile.write(body)
            if answer.stall_after is not None:
                handler.wfile.flush()
                time.sleep(answer.delay)  # a body that never finishes
                handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to tell it
