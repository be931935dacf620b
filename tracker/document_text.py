"""Text of fetched PDFs, extracted by pypdf in a forked child with a time and memory limit.

A PDF is untrusted input: a crafted or broken one can make a parser loop or eat memory. The
child gets an address-space limit and is killed at its deadline; whatever goes wrong comes back
as a reason, never as empty text.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
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


def extract_pdf_text(path: str | Path, timeout_s: float, memory_mb: int) -> PdfText:
    """The normalised text of the PDF at `path`, or why it has none."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_extract,
        args=(str(path), memory_mb * 1024 * 1024, sender, os.getpid()),
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            reason = f"unparsable: text extraction took over {timeout_s:g} s"
            return PdfText(None, reason, timed_out=True)
        try:
            status, value, pages = receiver.recv()
        except EOFError:
            return PdfText(None, "unparsable: text extraction crashed (memory limit?)")
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if status != "ok":
        return PdfText(None, f"unparsable: {value}")
    if not value:
        return PdfText(None, "unparsable: no text in the PDF (scanned image?)")
    return PdfText(value, "", pages)
