"""Which linked documents to fetch this run, and what their fetched text means for the store.

Pure functions. A document is fetched when it never was, when its last fetch failed, when its
listing moved (new title, date, version, PDF size...), or, where the server gave validators,
for a conditional re-check every `revalidate_after_days`. Otherwise nothing says it changed and
it is not downloaded again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from spiders.normalize import is_regulator_host
from storage.records import DocumentPlan, FetchCandidate
from tracker.detect import changed_event
from tracker.document_text import PdfText
from tracker.extract import document_fields

MAX_UNPARSABLE_ATTEMPTS = 3
UNFETCHABLE = "not-fetchable"  # fetch_status of a link that is not an http(s) HKMA URL


def link_problem(url: str) -> str | None:
    """Why a linked document's URL is not fetched at all, or None: only http(s) links to HKMA
    hosts, and the SFC's and the Insurance Authority's (a mirror maps those; stored URLs are
    always the real ones)."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname or "", parts.port
    except ValueError:
        return "not fetchable: malformed URL"
    if parts.scheme not in ("http", "https"):
        return (
            f"not fetchable: a {parts.scheme}: link" if parts.scheme else "not fetchable: no scheme"
        )
    if not host:
        return "not fetchable: malformed URL"
    if not is_regulator_host(host):
        return f"not fetchable: {host} is not a regulator's host"
    return None


def unfetchable(candidates: list[FetchCandidate]) -> dict[str, str]:
    """Active documents whose linked URL cannot be fetched and is not yet recorded as such:
    id -> reason. Recorded once, they are never asked for again until the link changes."""
    found = {}
    for c in candidates:
        url = c.document_url
        if url is None or c.document.status != "active":
            continue
        if (reason := link_problem(url)) and (c.fetch.status, c.fetch.url) != (UNFETCHABLE, url):
            found[c.document.id] = reason
    return found


def revalidate_before(now: datetime, revalidate_after_days: float) -> str:
    """Fetched before this time (ISO, UTC), a document with validators is re-checked."""
    return (now - timedelta(days=revalidate_after_days)).isoformat()


def select_fetches(
    candidates: list[FetchCandidate], now: datetime, revalidate_after_days: float, limit: int
) -> list[dict[str, Any]]:
    """Fetch requests, most urgent first: new, failed, listing moved, due for re-validation."""
    due: list[tuple[int, str, dict[str, Any]]] = []
    stale_before = revalidate_before(now, revalidate_after_days)
    for c in candidates:
        url, f = c.document_url, c.fetch
        if url is None or c.document.status != "active" or link_problem(url):
            continue
        validators = {"etag": f.etag, "last_modified": f.last_modified}
        if f.status is None or f.url != url:
            priority, validators = 0, {}
        elif f.status == "failed":
            priority = 1
        elif f.status == "unparsable" and f.attempts < MAX_UNPARSABLE_ATTEMPTS:
            priority, validators = 1, {}
        elif f.listing_hash != c.document.listing_hash:
            priority = 2
        elif (f.etag or f.last_modified) and (f.fetched_at or "") < stale_before:
            priority = 3
        else:
            continue
        due.append((priority, c.document.id, {"id": c.document.id, "url": url, **validators}))
    due.sort(key=lambda entry: entry[:2])
    return [request for _, _, request in due[:limit]]


def plan_documents(
    stored: dict[str, FetchCandidate],
    results: list[dict[str, Any]],
    pdf_texts: dict[str, PdfText],
    now: str,
    max_text_chars: int | None = None,
) -> DocumentPlan:
    """What each fetch result means. A document's first text is recorded as a version without
    an event (its arrival is not news); later text changes are 'changed' events naming the
    fields (`document.text`, `document.effective_dates`, ...). Failures keep the old text.
    Fields are read from the whole text; the text kept is cut at `max_text_chars`."""
    plan = DocumentPlan()
    for result in results:
        candidate = stored.get(result["document_id"])
        if candidate is None:
            continue
        doc = candidate.document
        attempts = candidate.fetch.attempts
        update: dict[str, Any] = {
            "fetch_url": result["url"],
            "fetched_at": now,
            "fetch_listing_hash": doc.listing_hash,
        }
        status, reason = result["status"], result.get("reason") or ""
        text = result.get("text") or ""
        if status == "fetched" and result.get("format") == "pdf":
            pdf = pdf_texts.get(doc.id) or PdfText(None, "unparsable: PDF not extracted")
            text = pdf.text or ""
            if pdf.text is None:
                status, reason = "unparsable", pdf.reason.removeprefix("unparsable: ")
        plan.count(status)
        if status == "not-modified":
            update.update(fetch_status="ok", fetch_reason=None, fetch_attempts=0)
        elif status in ("failed", "unparsable"):
            update.update(fetch_status=status, fetch_reason=reason, fetch_attempts=attempts + 1)
        else:
            update.update(
                fetch_status="ok",
                fetch_reason=None,
                fetch_attempts=0,
                fetch_etag=result.get("etag"),
                fetch_last_modified=result.get("last_modified"),
            )
            content = {"format": result["format"], **document_fields(text)}
            if max_text_chars is not None and len(text) > max_text_chars:
                content["text_cut"] = f"first {max_text_chars} of {len(text)} characters kept"
                text = text[:max_text_chars]
            content["text"] = text
            snapshot = dataclasses.replace(doc.snapshot, document=content)
            if snapshot.content_hash() != doc.content_hash:
                event = changed_event(doc.id, doc.snapshot, snapshot)
                plan.versions.append(event)
                update.update(document_content=content, content_hash=snapshot.content_hash())
                if doc.snapshot.document is not None:
                    plan.events.append(event)
                    plan.count("changed")
        plan.updates[doc.id] = update
    return plan
