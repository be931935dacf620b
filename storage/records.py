"""The records the history is made of, as plain data: snapshots of documents, change events,
listing verdicts, fetch states, links, and the plans a run decides (what to insert, change,
mark). tracker/ decides them; storage/ writes and reads them. Nothing here decides anything."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# The kinds of tags, each a JSON list column of `documents`.
KINDS = ("functions", "products", "entity_types")
TagSet = dict[str, dict[str, list[dict[str, Any]]]]  # kind -> tag -> evidence


class Tagger(Protocol):
    """Tags a document version (tracker.tagging provides one); storage only writes the result."""

    @property
    def version(self) -> str: ...

    def __call__(self, source: str, snapshot: Snapshot) -> TagSet: ...


SNAPSHOT_FIELDS = ("title", "url", "date", "text")
# Listing details that are signs, not news: a PDF re-exported with the same text has another
# size, or another revision stamp (the SFC's `?rev=`). A change in them makes the tracker
# re-read the document, not report a change.
SIGN_FIELDS = ("pdf_size", "pdf_rev")


def _hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_key(text: str, document_content: str | None) -> str:
    """What a `texts` row is found by: its text and document content (as stored, JSON)."""
    return _hash([text, document_content])


@dataclass(frozen=True)
class Snapshot:
    """What is tracked of a document: a change to any of it is a new version.

    Two facets: what its listing says (title, url, date, text, extra), and `document`, what the
    linked document itself says (its text and the fields extracted from it), None until fetched.
    """

    title: str
    url: str
    date: str | None
    text: str
    extra: dict[str, Any]
    document: dict[str, Any] | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any], document: dict[str, Any] | None = None) -> Snapshot:
        return cls(item["title"], item["url"], item["date"], item["text"], item["extra"], document)

    @classmethod
    def from_row(cls, row: Any) -> Snapshot:
        """From a `documents` or `versions` row (JSON columns as text or already parsed)."""

        def parsed(value: Any) -> Any:
            return json.loads(value) if isinstance(value, str) else value

        return cls(
            row["title"],
            row["url"],
            row["date"],
            row["text"],
            parsed(row["extra"]),
            parsed(row["document_content"]) or None,
        )

    def listing_fields(self) -> dict[str, Any]:
        flat: dict[str, Any] = {name: getattr(self, name) for name in SNAPSHOT_FIELDS}
        flat.update({f"extra.{k}": v for k, v in self.extra.items()})
        return flat

    def fields(self) -> dict[str, Any]:
        """What is compared: core fields, `extra` less its sign fields, `document`."""
        flat = {
            k: v
            for k, v in self.listing_fields().items()
            if k.removeprefix("extra.") not in SIGN_FIELDS
        }
        flat.update({f"document.{k}": v for k, v in (self.document or {}).items()})
        return flat

    def content_hash(self) -> str:
        return _hash(self.fields())

    def listing_hash(self) -> str:
        """Hash of what the listing says: when it moves, the document may have changed."""
        return _hash(self.listing_fields())

    @property
    def head(self) -> Head:
        return Head(self.title, self.url, self.date, self.extra)


@dataclass(frozen=True)
class Head:
    """A document's short facts (no text): what standing and supersessions are decided on."""

    title: str
    url: str
    date: str | None
    extra: dict[str, Any]


@dataclass(frozen=True, eq=False)
class StoredDocument:
    """A document as stored. Its `head` is always at hand; the full `snapshot` (the texts) is
    read from the store the first time it is asked for, so that deciding on documents whose
    listing hash did not move reads no text."""

    id: str
    listing: str
    status: str
    content_hash: str
    full: Snapshot | None = None  # None: read by `load` when needed
    known_head: Head | None = None
    known_listing_hash: str | None = None
    load: Callable[[], Snapshot] | None = None

    @functools.cached_property
    def snapshot(self) -> Snapshot:
        if self.full is not None:
            return self.full
        assert self.load is not None, f"{self.id}: neither a snapshot nor a way to read it"
        return self.load()

    @property
    def head(self) -> Head:
        return self.known_head if self.known_head is not None else self.snapshot.head

    @property
    def listing_hash(self) -> str:
        return self.known_listing_hash or self.snapshot.listing_hash()


class StoredDocuments(Mapping[str, StoredDocument]):
    """One source's stored documents, read from the store on demand: by id (the documents a
    crawl lists, in batches), or those active in given listings (removals). Iterating reads
    them all, once. Made from a plain dict too (tests)."""

    def __init__(
        self,
        known: Mapping[str, StoredDocument] | None = None,
        by_ids: Callable[[Collection[str]], dict[str, StoredDocument]] | None = None,
        every: Callable[[], list[StoredDocument]] | None = None,
        active_in: Callable[[Collection[str]], list[StoredDocument]] | None = None,
    ) -> None:
        self._known: dict[str, StoredDocument | None] = dict(known or {})
        self._by_ids, self._every, self._active_in = by_ids, every, active_in

    def prefetch(self, ids: Iterable[str]) -> None:
        wanted = [i for i in ids if i not in self._known]
        if wanted and self._by_ids is not None:
            found = self._by_ids(wanted)
            self._known.update({i: found.get(i) for i in wanted})

    def _remember(self, docs: Iterable[StoredDocument]) -> None:
        for doc in docs:  # one object per document: its loaded text is kept with it
            if self._known.get(doc.id) is None:
                self._known[doc.id] = doc

    def __getitem__(self, doc_id: str) -> StoredDocument:
        self.prefetch([doc_id])
        doc = self._known.get(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc

    def __iter__(self) -> Iterator[str]:
        if self._every is not None:
            self._remember(self._every())
            self._every = None
            self._by_ids = None  # everything is known now
        return iter([i for i, d in self._known.items() if d is not None])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def active_in(self, listings: Collection[str]) -> list[StoredDocument]:
        """Active documents whose listing is one of `listings`."""
        if self._active_in is None or self._every is None:
            return [d for d in self.values() if d.status == "active" and d.listing in listings]
        found = self._active_in(listings)
        self._remember(found)
        return [self[d.id] for d in found]


@dataclass(frozen=True)
class ChangeEvent:
    document_id: str
    kind: str  # new | changed | removed
    snapshot: Snapshot
    fields: list[str]
    diff: str  # a unified diff per field, for people (`diff`, `history`); never parsed
    baseline: bool = False
    significance: str = "substantive"  # or "cosmetic" (changed events only)
    significance_reason: str = ""
    # What changed, as data, one entry per field: {"field", "old", "new"} for a value;
    # {"field", "words": passages} for wording (title, texts), each passage a list of
    # [op, words] with op "=", "-" or "+", computed once when the change is found.
    changed: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ListingVerdict:
    source: str
    url: str
    healthy: bool
    reason: str
    items: int
    complete: bool = True  # read whole (a full sweep), not a recent slice


@dataclass
class SourcePlan:
    """Everything one source's crawl means for the store, decided before anything is written."""

    source: str
    verdicts: list[ListingVerdict]
    regulator: str = "HKMA"  # who publishes what the source lists (HKMA, SFC, IA)
    events: list[ChangeEvent] = field(default_factory=list)
    seen: dict[str, tuple[str, Snapshot]] = field(default_factory=dict)  # id -> (listing, snap)
    first_seen: set[str] = field(default_factory=set)  # ids the store has never had
    # Listed as stored (the listing hash did not move): their `seen` snapshot is the listing's
    # word only, without the linked document, which was not read; the store's is current.
    unchanged: set[str] = field(default_factory=set)
    refreshed: set[str] = field(default_factory=set)  # only sign fields moved: store, no event
    # Held documents this crawl did not list but changed all the same (a supersession another
    # record announced, a document gone from the register): id -> (listing, snapshot).
    restated: dict[str, tuple[str, Snapshot]] = field(default_factory=dict)
    sweep: str | None = None  # full, incremental or mixed (sources with an incremental mode)
    sweep_reason: str = ""
    # Documents gone from the register that would be marked withdrawn, held back (too many
    # in one sweep to trust), and why: the source is unhealthy until someone decides.
    held: list[StoredDocument] = field(default_factory=list)
    held_reason: str = ""

    @property
    def healthy(self) -> bool:
        return all(v.healthy for v in self.verdicts) and not self.held

    @property
    def reason(self) -> str:
        reasons = [f"{v.url}: {v.reason}" for v in self.verdicts if not v.healthy]
        return "; ".join([*reasons, self.held_reason] if self.held else reasons)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)


@dataclass(frozen=True)
class FetchState:
    """What the store knows of a document's last fetch (the `fetch_*` columns)."""

    url: str | None = None
    status: str | None = None  # None (never), ok, unparsable, failed, not-fetchable
    reason: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    listing_hash: str | None = None
    fetched_at: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class FetchCandidate:
    document: StoredDocument
    source: str
    fetch: FetchState

    @property
    def document_url(self) -> str | None:
        url = self.document.head.extra.get("document_url")
        return str(url) if url else None


@dataclass
class DocumentPlan:
    """Fetch-state updates, versions to record and change events, decided before writing."""

    updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> columns
    versions: list[ChangeEvent] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


@dataclass(frozen=True)
class Link:
    key: str
    kind: str
    evidence: str


LinksOf = Callable[["Snapshot"], list[Link]]
