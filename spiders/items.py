"""What spiders yield: tracked documents and the outcome of each listing they fetched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DocumentItem:
    """One tracked thing as a listing shows it today.

    `listing` is the feed or page URL the item came from: the unit of health, and the only
    scope in which a missing document can count as removed.
    """

    source: str
    listing: str
    key: str
    title: str
    url: str
    date: str | None = None
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ListingOutcome:
    """Whether one listing (a feed, a topic page) was fetched and parsed, and how many items."""

    source: str
    listing: str
    ok: bool
    reason: str = ""
    status: int | None = None
    items: int = 0
    removals_allowed: bool = True
    comparable: bool = True  # item counts can be compared with earlier runs


@dataclass
class RegisterLookup:
    """What a BRDR landing page says of a document that left the current register: the
    documents it names as versions or supersessions, each {relation, doc_id, title,
    issue_date, version}. `ok` False (with `reason`) when the page could not be read."""

    document_id: str
    url: str
    ok: bool
    reason: str = ""
    related: list[dict[str, Any]] = field(default_factory=list)
