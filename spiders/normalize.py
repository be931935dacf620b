"""Pure normalisation of what HKMA publishes: links, titles, dates and text."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

HONG_KONG = timezone(timedelta(hours=8), "HKT")

# "(PDF File, 154.7 KB)", "(PDF file, 136KB)", "(PDF File, 1.2 MB)" anywhere in a title.
_PDF_SIZE = re.compile(r"\s*\(PDF\s+file,\s*([\d.,]+\s*[KM]B)\)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
# What must never reach a terminal, a digest or the store from outside: C0 controls but tab and
# newline, DEL, C1 controls, and the bidi embeddings, overrides and isolates that reorder text.
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_HKMA_HOST = re.compile(r"(^|\.)hkma\.gov\.hk$")
# The regulators' domains: crawls go nowhere else, and a linked document elsewhere is not read.
REGULATOR_DOMAINS = {"HKMA": "hkma.gov.hk", "SFC": "sfc.hk", "IA": "ia.org.hk"}


def strip_unprintable(value: str) -> str:
    """`value` without control and bidi-override characters (tab and newline stay)."""
    return UNPRINTABLE.sub("", value)


# What an id or a URL may not hold at all: every control character (tab and newline too) and
# the bidi overrides. A line break in a URL would end an email header or a calendar line.
_NOT_IN_IDS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_id(value: object) -> str:
    """An identifier or URL from outside as the store keeps it: no control or bidi
    characters anywhere, ends trimmed."""
    return _NOT_IN_IDS.sub("", str(value)).strip()


def clean_text(text: str | None) -> str:
    """NFC, non-breaking spaces as spaces, no control or bidi-override characters, runs of
    whitespace collapsed, ends trimmed."""
    if not text:
        return ""
    text = strip_unprintable(unicodedata.normalize("NFC", text).replace("\xa0", " "))
    return _SPACE.sub(" ", text).strip()


def clean_title(title: str | None) -> str:
    """A listing title without its "(PDF File, N KB)" size note."""
    return clean_text(_PDF_SIZE.sub(" ", title or ""))


def pdf_size_note(title: str | None) -> str | None:
    """The "154.7 KB" of a "(PDF File, 154.7 KB)" title note: a cheap sign that a PDF changed."""
    match = _PDF_SIZE.search(title or "")
    return clean_text(match.group(1)).replace(" ", "") if match else None


def is_loopback_host(host: str) -> bool:
    """localhost or an address in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_hkma_host(host: str) -> bool:
    return bool(_HKMA_HOST.search(host.lower().rstrip(".")))


def regulator_of_host(host: str) -> str | None:
    """Whose host it is (a REGULATOR_DOMAINS code: HKMA, SFC, IA), or None."""
    host = host.lower().rstrip(".")
    for regulator, domain in REGULATOR_DOMAINS.items():
        if host == domain or host.endswith("." + domain):
            return regulator
    return None


def is_regulator_host(host: str) -> bool:
    """A host of the HKMA, the SFC or the Insurance Authority."""
    return regulator_of_host(host) is not None


def normalize_url(href: str, base: str) -> str:
    """Absolute URL with a lower-case host and no fragment; HKMA hosts always on https.

    Protocol-relative (`//www.hkma.gov.hk/...`) and relative links are resolved against `base`.
    A link that is not a URL at all (a bad IPv6 host, a port out of range) is returned as
    written: it is data to record, not a reason to fail the listing it came from.
    """
    href = clean_id(href)
    try:
        parts = urlsplit(urljoin(base, href))
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return href
    scheme = "https" if is_hkma_host(host) else parts.scheme.lower()
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def parse_rss_date(value: str | None) -> date | None:
    """The Hong Kong date of an RSS pubDate ("Fri, 30 Jan 2026 00:00:00 +0800").

    Also accepts the bare "10 Apr 2026" seen once in the feeds. None when unreadable.
    """
    value = clean_text(value)
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return parse_listing_date(value)
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(HONG_KONG).date()


_LISTING_FORMATS = ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%d.%m.%y")


def parse_listing_date(value: str | None) -> date | None:
    """A date as HKMA pages write it: "09 Sep 2024", "2 May 2019", "10 April 2025", "28.12.01"."""
    value = clean_text(value)
    for fmt in _LISTING_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


BRDR = "https://brdr.hkma.gov.hk"
_LANGUAGE_SUFFIX = re.compile(r"-(EN|TC|SC|CHI)$", re.IGNORECASE)


def base_id(doc_id: str) -> str:
    """A BRDR document id without its language: `20250428-3-EN` and `20250428-3-TC` ->
    `20250428-3`."""
    return _LANGUAGE_SUFFIX.sub("", doc_id)
