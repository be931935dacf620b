"""Text of fetched PDFs, extracted by pypdf in a forked child with a time and memory limit.

A PDF is untrusted input: a crafted or broken one can make a parser loop or eat memory. The
child gets an address-space limit and is killed at its deadline; whatever goes wrong comes back
as a reason, never as empty text.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from pypdf import PdfReader  # imported once here, so that each forked child starts warm

from spiders.normalize import clean_text
from tracker.children import die_with_parent


@dataclass(frozen=True)
class PdfText:
    text: str | None  # None when unparsable
    reason: str = ""
    pages: int = 0
    timed_out: bool = False


def _extract(path: str, memory_bytes: int, conn: Connection, parent: int) -> None:
    die_with_parent(parent)
    os.nice(10)  # a crawl may still be fetching: it goes first, reading fills the idle CPU
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
        conn.send(("ok", clean_text(" ".join(pages)), len(pages)))
    except MemoryError:
        conn.send(("error", "memory limit exceeded", 0))
    except Exception as error:
        conn.send(("error", f"{type(error).__name__}: {error}"[:300], 0))
    finally:
        conn.close()


@dataclass
class _Extraction:
    key: str
    child: BaseProcess
    receiver: Connection
    ends_at: float  # time.monotonic() when this PDF's own limit is up


def _start(key: str, path: str | Path, timeout_s: float, memory_mb: int) -> _Extraction:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_extract,
        args=(str(path), memory_mb * 1024 * 1024, sender, os.getpid()),
        daemon=True,
    )
    child.start()
    sender.close()
    return _Extraction(key, child, receiver, time.monotonic() + timeout_s)


def _stop(job: _Extraction) -> None:
    job.receiver.close()
    if job.child.is_alive():
        job.child.kill()
    job.child.join(5)


def _result(job: _Extraction) -> PdfText:
    try:
        status, value, pages = job.receiver.recv()
    except EOFError:
        return PdfText(None, "unparsable: text extraction crashed (memory limit?)")
    if status != "ok":
        return PdfText(None, f"unparsable: {value}")
    if not value:
        return PdfText(None, "unparsable: no text in the PDF (scanned image?)")
    return PdfText(value, "", pages)


def _past(moment: float | None) -> bool:
    return moment is not None and time.monotonic() >= moment


class PdfReaders:
    """PDFs read `workers` at a time, each in its own limited child. PDFs can be added while
    others are read (as a crawl fetches them); `poll` takes what finished and starts more
    without waiting, `finish` waits for the rest.

    `stop_at` (a time.monotonic() value) is the run's deadline: PDFs not read by then are
    returned apart, unread (their children killed), for the next run to read."""

    def __init__(
        self, timeout_s: float, memory_mb: int, workers: int = 2, stop_at: float | None = None
    ) -> None:
        self.timeout_s, self.memory_mb, self.workers = timeout_s, memory_mb, workers
        self.stop_at = stop_at
        self.pending: list[tuple[str, str | Path]] = []
        self.running: list[_Extraction] = []
        self.texts: dict[str, PdfText] = {}
        self.unread: list[str] = []
        self.added: set[str] = set()

    def add(self, key: str, path: str | Path) -> None:
        if key not in self.added:
            self.added.add(key)
            self.pending.append((key, path))
            self.poll()

    def poll(self, wait_s: float = 0.0) -> None:
        """Start what may start and take what finishes, for up to `wait_s` (returning sooner
        when nothing runs)."""
        until = time.monotonic() + wait_s
        while True:
            while self.pending and len(self.running) < self.workers and not _past(self.stop_at):
                key, path = self.pending.pop(0)
                self.running.append(_start(key, path, self.timeout_s, self.memory_mb))
            if not self.running:
                return
            wake = min(until, *(job.ends_at for job in self.running))
            if self.stop_at is not None:
                wake = min(wake, self.stop_at)
            ready = wait([j.receiver for j in self.running], max(0.0, wake - time.monotonic()))
            for job in list(self.running):
                if job.receiver in ready:
                    self.texts[job.key] = _result(job)
                elif time.monotonic() >= job.ends_at:
                    reason = f"unparsable: text extraction took over {self.timeout_s:g} s"
                    self.texts[job.key] = PdfText(None, reason, timed_out=True)
                elif _past(self.stop_at):
                    self.unread.append(job.key)
                else:
                    continue
                self.running.remove(job)
                _stop(job)
            if time.monotonic() >= until:
                return

    def finish(self) -> tuple[dict[str, PdfText], list[str]]:
        """Every PDF's text (key -> text), and the keys the deadline left unread."""
        while self.running or (self.pending and not _past(self.stop_at)):
            self.poll(wait_s=60.0)
        self.unread += [key for key, _ in self.pending]  # the deadline came before they started
        self.pending = []
        return self.texts, self.unread


def extract_pdf_texts(
    paths: dict[str, str | Path],
    timeout_s: float,
    memory_mb: int,
    workers: int = 2,
    stop_at: float | None = None,
) -> tuple[dict[str, PdfText], list[str]]:
    """The text of each PDF (key -> path), as `PdfReaders` reads them."""
    readers = PdfReaders(timeout_s, memory_mb, workers, stop_at)
    for key, path in paths.items():
        readers.add(key, path)
    return readers.finish()


def extract_pdf_text(path: str | Path, timeout_s: float, memory_mb: int) -> PdfText:
    """The normalised text of the PDF at `path`, or why it has none."""
    texts, _ = extract_pdf_texts({"pdf": path}, timeout_s, memory_mb, workers=1)
    return texts["pdf"]
