"""Links between documents and rule timelines: pure functions over stored snapshots.

A document is linked to keys: `spm:<module>` (an SPM module it is or names), `ref:<number>`
(a circular reference number in its text), `brdr:<docId>` (a BRDR document it is, links,
supersedes, is superseded by or relates to). Documents sharing a key are linked; the timeline
of a key lists the dated entries of every document linked to it.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from alerts.digest import standing
from storage.records import Link, Snapshot
from tracker.extract import REFERENCE, SPM_CODE

_BRDR_ID = re.compile(r"/doc-ldg/(?:current|docId)/(?:getPdf/)?(\d{8}-\d+)-[A-Z]{2}")
_BASE_ID = re.compile(r"^(\d{8}-\d+)")


def _brdr(doc_id: str) -> str | None:
    match = _BASE_ID.match(doc_id)
    return f"brdr:{match.group(1)}" if match else None


def successor_doc_id(extra: dict[str, Any]) -> str | None:
    """The BRDR id of what superseded a document (`superseded_by` is {id, doc_id, title, url};
    histories written before it carry the BRDR id alone)."""
    by = extra.get("superseded_by")
    if isinstance(by, dict):
        return str(by["doc_id"]) if by.get("doc_id") else None
    return str(by) if by else None


def links_of(snapshot: Snapshot) -> list[Link]:
    """Every key a document is linked to, with the kind of link and where it was read."""
    extra, document = snapshot.extra, snapshot.document or {}
    found: dict[tuple[str, str], Link] = {}

    def add(key: str | None, kind: str, evidence: str) -> None:
        if key and (key, kind) not in found:
            found[key, kind] = Link(key, kind, evidence)

    if extra.get("spm_code"):
        add(f"spm:{extra['spm_code']}", "is", "BRDR spmCode")
    for code in SPM_CODE.findall(snapshot.title):
        add(f"spm:{code}", "mentions", "title")
    for code in document.get("spm_codes", []):
        add(f"spm:{code}", "mentions", "document text")
    for reference in document.get("references", []):
        add(f"ref:{reference}", "mentions", "document text")
    # "This circular supersedes B1/15C …" / "the revised module CR-G-7 replaces …": what a
    # supersession sentence names is superseded (or revised) by this document.
    for sentence in document.get("supersession_mentions", []):
        for code in SPM_CODE.findall(sentence):
            add(f"spm:{code}", "supersedes", f"wording: {sentence[:120]}")
        for reference in REFERENCE.findall(sentence):
            add(f"ref:{reference}", "supersedes", f"wording: {sentence[:120]}")
    if extra.get("doc_id"):
        add(_brdr(str(extra["doc_id"])), "is", "BRDR docId")
    for url in [snapshot.url, str(extra.get("document_url") or "")]:
        if match := _BRDR_ID.search(url):
            add(f"brdr:{match.group(1)}", "is", "link to BRDR")
    for doc_id in extra.get("supersedes", []):
        add(_brdr(doc_id), "supersedes", "BRDR supersededDocList")
    for doc_id in extra.get("version_history", []):
        add(_brdr(doc_id), "version-of", "BRDR versionHistoryDocList")
    if successor := successor_doc_id(extra):
        add(_brdr(successor), "superseded-by", "superseded by")
    for doc_id in extra.get("related", []):
        add(_brdr(doc_id), "related", "BRDR directlyRelatedDocList")
    # Keys a source's spider states itself (an SFC reference number, a paper's conclusions).
    for link in extra.get("links", []):
        if isinstance(link, dict) and link.get("key") and link.get("kind"):
            add(str(link["key"]), str(link["kind"]), str(link.get("evidence") or "listing"))
    return list(found.values())


class UnknownKey(ValueError):
    """A rule key in none of the forms people write them."""


_BRDR_NUMBER = re.compile(r"(\d{8}-\d+)(?:-[A-Z]{2})?")


def rule_key(text: str) -> str:
    """A key as people write it: `B1/15C` is a reference, `IC-6` an SPM module, `20250428-3`
    a BRDR document; a key with its prefix (`spm:IC-6`) is taken as it is. Anything else is
    refused (it would silently match nothing)."""
    text = text.strip()
    if ":" in text:
        return text
    if REFERENCE.fullmatch(text):
        return f"ref:{text}"
    if SPM_CODE.fullmatch(text):
        return f"spm:{text}"
    if number := _BRDR_NUMBER.fullmatch(text):
        return f"brdr:{number.group(1)}"
    raise UnknownKey(
        f"{text!r} is not an SPM module (IC-6), a circular reference (B1/15C) or a BRDR "
        "document number (20250428-3); or give the key with its prefix (spm:, ref:, brdr:)"
    )


def _entry(date: str | None, what: str, row: dict[str, Any], detail: str = "") -> dict[str, Any]:
    return {
        "date": date,
        "entry": what,
        "document_id": row["id"],
        "title": row["title"],
        "url": row["url"],
        "detail": detail,
    }


def _kind_of(row: dict[str, Any]) -> str:
    extra = row["extra"]
    feed, title = extra.get("feed", ""), row["title"].lower()
    if row["source"] == "press_releases" or feed == "press-release":
        return "press release"
    if extra.get("doc_type") == "CPR" or feed == "consultations" or "consultation" in title:
        return "consultation"
    if extra.get("doc_type") in ("SPM", "GLI", "IGL", "COP", "GTA"):
        return "issued"
    if feed in ("guidelines", "codes"):  # a feed's or a page's (the SFC's codes)
        return "guideline" if feed == "guidelines" else "code of practice"
    return "circular"


def timeline(key: str, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dated entries of every document linked to `key`, oldest first.

    `documents`: rows with id, source, title, url, date, extra, document_content, status,
    `versions` (their dates and extra, oldest first), `link_kind` (how it links to `key`) and
    `replaced` (what it superseded, in words).
    """
    entries = []
    for row in documents:
        kind = _kind_of(row)
        versions = row["versions"]
        if kind == "issued" and versions:
            first = versions[0]
            entries.append(_entry(first["date"], "issued", row, f"version {first['version']}"))
            for before, after in pairwise(versions):
                if after["version"] != before["version"]:
                    detail = f"version {before['version']} -> {after['version']}"
                    entries.append(_entry(after["date"], "revised", row, detail))
        else:
            entries.append(_entry(row["date"], kind, row, f"{row['link_kind']} {key}"))
        extra = row["extra"]
        if extra.get("status") == "superseded":
            when = extra.get("supersession_date") or extra.get("left_register_on") or row["date"]
            entries.append(_entry(when, "superseded", row, standing(extra)))
        elif extra.get("status") == "withdrawn":
            entries.append(_entry(extra.get("left_register_on"), "withdrawn", row, standing(extra)))
        for replaced in row.get("replaced", []):
            entries.append(_entry(row["date"], "replaces", row, replaced))
        # Earlier versions a listing names (the SFC's codes and guidelines): each in force from
        # its date.
        for earlier in extra.get("previous_versions", []):
            entries.append(_entry(earlier.get("from"), "earlier version", row, earlier["dates"]))
        for effective in (row["document_content"] or {}).get("effective_dates", []):
            entries.append(_entry(effective["date"], "effective", row, effective["sentence"]))
    return sorted(entries, key=lambda e: (e["date"] or "", e["entry"]))
