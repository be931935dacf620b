"""Fetches the documents that tracked items link to: PDFs and HTML pages.

The tracker says which documents to fetch (with the validators it holds). This spider fetches
each once, conditionally where it can, checks what came back (a PDF must start with `%PDF`; a
BRDR landing page is followed once to its PDF), keeps PDF bytes on disk for the tracker to
extract in a resource-limited process, and extracts HTML text itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scrapy
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from spiders.base import ListingError, ScheduledArguments, failure_reason
from spiders.crawl import job_feed
from spiders.normalize import normalize_url
from spiders.pages import html_text

logger = logging.getLogger(__name__)

# A BRDR landing page links its file here (R1 in ../shared/hkma-sources.md).
LANDING_FILE_LINK = ".document-file-info a[href]"


@dataclass
class FetchedDocument:
    """What fetching one document gave: its text or PDF bytes, or why there is none."""

    document_id: str
    url: str
    status: str  # fetched | not-modified | unparsable | failed
    reason: str = ""
    format: str = ""  # pdf | html
    final_url: str = ""
    pdf_file: str | None = None  # PDF bytes on disk, for the tracker to extract
    title: str = ""
    text: str = ""
    etag: str | None = None
    last_modified: str | None = None
    bytes: int = 0


def pdf_file_name(document_id: str) -> str:
    """The name a fetched PDF gets in the output folder. It appears whole (written, then
    renamed), so that the tracker can start reading it while the crawl goes on."""
    return f"{hashlib.sha256(document_id.encode()).hexdigest()[:32]}.pdf"


def looks_like_pdf(body: bytes) -> bool:
    # The header may follow a little junk (PDF 1.7, 7.5.2); HTML error pages never have it.
    return b"%PDF-" in body[:1024]


def expects_pdf(url: str) -> bool:
    path = url.split("?", 1)[0].lower()
    return path.endswith(".pdf") or "/getpdf/" in path


class DocumentsSpider(ScheduledArguments, scrapy.Spider):
    """Options: `documents` [{id, url, etag, last_modified}], `output` folder (none in a scrapyd
    job: PDFs go beside the job's feed as `<job>--<file>`, where scrapyd serves them),
    `pdf_max_bytes`, `html_max_bytes` (the limit of a URL that does not name a PDF)."""

    name = "documents"

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__()
        options = options or {}
        self.documents: list[dict[str, Any]] = options.get("documents", [])
        self.output = Path(options["output"]) if options.get("output") else None
        self.prefix = ""
        self.pdf_max_bytes = int(options.get("pdf_max_bytes", 50 * 1024 * 1024))
        self.html_max_bytes = int(options.get("html_max_bytes", 5 * 1024 * 1024))

    @property
    def folder(self) -> Path:
        if self.output is None:
            feed = job_feed(self.settings.getdict("FEEDS"))
            if feed is None:
                raise ValueError("no output folder, and no scrapyd items feed to write beside")
            self.output, self.prefix = feed.parent, f"{feed.stem}--"
        return self.output

    async def start(self) -> Any:
        self.folder.mkdir(parents=True, exist_ok=True)
        for doc in self.documents:
            headers = {}
            if doc.get("etag"):
                headers["If-None-Match"] = doc["etag"]
            if doc.get("last_modified"):
                headers["If-Modified-Since"] = doc["last_modified"]
            # An exception here would end this generator, and with it every fetch after it.
            try:
                request = self.request(doc["id"], doc["url"], doc["url"], headers=headers)
            except Exception as error:
                reason = f"not fetchable: {type(error).__name__}: {error}"
                yield FetchedDocument(doc["id"], doc["url"], "failed", reason=reason[:300])
                continue
            yield request

    def request(self, doc_id: str, asked: str, url: str, **kwargs: Any) -> scrapy.Request:
        return scrapy.Request(
            url,
            callback=self.parse_document,
            errback=self.document_failed,
            meta={
                "document_id": doc_id,
                "asked": asked,
                "handle_httpstatus_list": [304],
                "download_maxsize": self.pdf_max_bytes if expects_pdf(url) else self.html_max_bytes,
                **kwargs.pop("meta", {}),
            },
            dont_filter=True,
            **kwargs,
        )

    def parse_document(self, response: Response) -> Iterable[FetchedDocument | scrapy.Request]:
        doc_id, asked = response.meta["document_id"], response.meta["asked"]
        common = {
            "document_id": doc_id,
            "url": asked,
            "final_url": response.url,
            "etag": _header(response, b"ETag"),
            "last_modified": _header(response, b"Last-Modified"),
            "bytes": len(response.body),
        }
        if response.status == 304:
            yield FetchedDocument(status="not-modified", **common)
            return
        content_type = (_header(response, b"Content-Type") or "").lower()
        if looks_like_pdf(response.body):
            path = self.folder / (self.prefix + pdf_file_name(doc_id))
            partial = path.with_suffix(".part")
            try:
                partial.write_bytes(response.body)
                partial.replace(path)
            except OSError as error:  # a full disk, say: no result, so the document stays due
                partial.unlink(missing_ok=True)
                logger.error("document %s: could not be saved: %s", asked, error)
                stats = self.crawler.stats
                assert stats is not None
                stats.inc_value("documents/not_saved")
                stats.set_value("documents/not_saved_reason", f"{error.strerror} ({self.output})")
                return
            yield FetchedDocument(status="fetched", format="pdf", pdf_file=str(path), **common)
            return
        if not isinstance(response, TextResponse) or "html" not in content_type:
            why = "not a PDF (no %PDF header)" if "pdf" in content_type else "unsupported type"
            reason = f"{why}: Content-Type {content_type or 'missing'}"
            yield FetchedDocument(status="unparsable", reason=reason, **common)
            return
        landing = response.css(LANDING_FILE_LINK)
        if landing and not response.meta.get("followed_landing"):
            target = normalize_url(str(landing[0].attrib["href"]), response.url)
            yield self.request(doc_id, asked, target, meta={"followed_landing": True})
            return
        if expects_pdf(asked):
            reason = f"expected a PDF, got an HTML page ({response.url})"
            yield FetchedDocument(status="unparsable", reason=reason, **common)
            return
        try:
            title, text = html_text(response.text)
        except ListingError as error:
            yield FetchedDocument(status="unparsable", reason=str(error), **common)
            return
        if not text:
            yield FetchedDocument(status="unparsable", reason="HTML page without text", **common)
            return
        yield FetchedDocument(status="fetched", format="html", title=title, text=text, **common)

    def document_failed(self, failure: Failure) -> Iterable[FetchedDocument]:
        request = failure.request  # type: ignore[attr-defined]
        reason, _ = failure_reason(failure, request.meta.get("download_maxsize"))
        logger.warning("document %s: %s", request.meta["asked"], reason)
        yield FetchedDocument(
            document_id=request.meta["document_id"],
            url=request.meta["asked"],
            # Too large is a property of the document, not a passing failure: it is tried a
            # few times (in case it was a bad response), not every run for ever.
            status="unparsable" if reason.startswith("dropped:") else "failed",
            reason=reason,
        )


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
