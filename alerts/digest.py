"""The digest: change events grouped for reading, rendered as plain text, HTML and an email."""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from itertools import groupby
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from jinja2 import Environment

# A BRDR document's id, whichever BRDR page form links it (current/…, docId/…, getPdf/…).
_BRDR_DOC_ID = re.compile(
    r"brdr\.hkma\.gov\.hk/\w+/doc-ldg/(?:current|docId)/(?:getPdf/)?(\d{8}-\d+)-"
)
KIND_ORDER = {"new": 0, "changed": 1, "removed": 2}
HONG_KONG = timezone(timedelta(hours=8), "HKT")
SOON = timedelta(days=30)  # "takes effect within 30 days"
# The section of binding instruments that reach a filtered subscriber without a tag it filters
# on (the caller puts such entries in it: `DigestEntry.group`).
UNTAGGED = "untagged"
UNTAGGED_TITLE = "Not tagged for your filters: may concern you"
# Fields whose change moves a deadline; and the attached calendar's file name.
DEADLINE_FIELDS = {
    "document.effective_dates", "document.consultation_closes", "extra.consultation",
}  # fmt: skip
CALENDAR_FILE = "hkma-deadlines.ics"
# What a changed field is called in a digest: an officer's words, never the stored name.
FIELD_LABELS = {
    "title": "Title", "url": "Link", "date": "Date", "text": "Listing text",
    "document.text": "Document text", "document.format": "Document format",
    "document.effective_dates": "Takes effect", "document.consultation_closes":
    "Consultation closes", "document.references": "Reference numbers",
    "document.addressees": "Addressed to", "document.spm_codes": "SPM modules named",
    "document.supersession_mentions": "What it says it supersedes",
    "extra.version": "Version", "extra.doc_id": "BRDR document number",
    "extra.document_url": "Document link", "extra.version_history": "Earlier versions",
    "extra.status": "Standing", "extra.superseded_by": "Superseded by",
    "extra.supersession_date": "Superseded on", "extra.consultation": "Consultation dates",
    "extra.topics": "Register topics", "extra.sections": "Listed under",
    "extra.doc_type_desc": "Document type", "extra.spm_code": "SPM module",
    "extra.attachments": "Attachments", "extra.left_register_on": "Left the register on",
}  # fmt: skip
# A new version of a register record moves these together: said once, as "New version".
VERSION_FIELDS = {"extra.version", "extra.doc_id", "extra.document_url", "extra.version_history"}
VERSION_FIELDS |= {"url"}
# Dates an officer acts on: a move leads the entry and the summary.
DATE_FIELDS = {"document.effective_dates": "Takes effect",
               "document.consultation_closes": "Consultation closes"}  # fmt: skip


def field_label(name: str) -> str:
    """A stored field's name as a digest says it ("extra.doc_id" -> "BRDR document number")."""
    return FIELD_LABELS.get(name) or name.rsplit(".", 1)[-1].replace("_", " ").capitalize()


_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}|\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\w* \d{4}"
)


def _unbroken_dates(text: str) -> Markup:
    """`text` escaped, each date in it kept on one line (a browser may otherwise break
    2015-03-31 after a hyphen)."""
    parts, last = [], 0
    for found in _DATE.finditer(text):
        parts.append(escape(text[last : found.start()]))
        parts.append(Markup('<span style="white-space:nowrap;">%s</span>') % found.group())
        last = found.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


@dataclass(frozen=True)
class DigestEntry:
    change_id: int
    kind: str
    source: str
    title: str
    url: str
    date: str | None
    fields: list[str]
    changed: tuple[dict[str, Any], ...]  # per field: old/new, or word-level passages
    detected_at: str
    also_in: tuple[str, ...] = ()  # other sources that reported the same publication
    tags: tuple[str, ...] = ()  # the document's functions and products
    doc_type: str = ""  # "CIR - Circular", "circulars" feed, ...
    references: tuple[str, ...] = ()  # circular reference numbers from the document
    effective: str = ""  # the first effective date the document states
    closes: str = ""  # the date its consultation closes, where the document states one
    document_id: str = ""
    standing: str = ""  # "superseded by ...", "withdrawn from the current register"
    group: str = ""  # its digest section (the caller's `group_titles` key); "": its source
    functions: tuple[str, ...] = ()
    listed_under: str = ""  # a topic-page row's page and sections; where a removed one was
    excerpt: str = ""  # a new document: the start of its text
    last_seen: str = ""  # a removed one: the day it was last listed
    # Why it is in this subscriber's digest, where a reader may wonder: "No function tag: no
    # rule matched its title or text", "Tagged AML/CFT by J. Chan on 2026-12-02".
    why: str = ""
    # Its rule record, when it is not the record's first update: which update it is, since
    # when the record runs, and the dates and kinds of the updates before it (newest first).
    record_title: str = ""
    record_update: int = 0
    record_since: str = ""
    record_earlier: tuple[str, ...] = ()
    regulator: str = "HKMA"  # who published it: HKMA, SFC, IA

    @classmethod
    def from_change(cls, change: dict[str, Any]) -> DigestEntry:
        extra = _json(change.get("document_extra")) or {}
        document = _json(change.get("document_content")) or {}
        effective = document.get("effective_dates") or []
        closes = document.get("consultation_closes") or []
        return cls(
            change["id"],
            change["kind"],
            change["source"],
            change["title"],
            change["url"],
            change["date"],
            change["fields"],
            tuple(_json(change.get("changed")) or ()),
            change["detected_at"],
            tags=tuple(
                change.get("functions", [])
                + change.get("products", [])
                + change.get("entity_types", [])
            ),
            doc_type=str(extra.get("doc_type_desc") or extra.get("feed") or ""),
            references=tuple(document.get("references", [])),
            effective=effective[0]["date"] if effective else "",
            # BRDR's register states a consultation's close; otherwise the document may.
            closes=str((extra.get("consultation") or {}).get("closes") or "")
            or (closes[0]["date"] if closes else ""),
            document_id=str(change.get("document_id", "")),
            standing=standing(extra),
            group=str(change.get("digest_group", "")),
            functions=tuple(change.get("functions", [])),
            listed_under=str(change.get("listed_in") or "")
            if change["kind"] == "removed" or extra.get("sections")
            else "",
            # From where the caller says its subject starts (not a letter's heading lines).
            excerpt=_excerpt(str(change.get("excerpt_from") or document.get("text") or ""))
            if change["kind"] == "new"
            else "",
            last_seen=hong_kong_day(change.get("document_last_seen")),
            why=str(change.get("why") or ""),
            record_title=str(change.get("record_title") or ""),
            record_update=int(change.get("record_update") or 0),
            record_since=str(change.get("record_since") or ""),
            record_earlier=tuple(change.get("record_earlier") or ()),
            regulator=str(change.get("regulator") or "HKMA"),
        )

    @property
    def word_changes(self) -> list[list[tuple[str, str]]]:
        """What the wording of the title and text became, word by word: one list of
        (op, words) per changed passage, op being "=", "-" or "+"."""
        passages = [p for c in self.changed for p in c.get("words") or []]
        return [[(op, words) for op, words in p] for p in passages[:MAX_PASSAGES]]

    @property
    def word_change_lines(self) -> list[str]:
        """The word changes as plain text: [-removed-] {+added+}."""
        marks = {"-": "[-{}-]", "+": "{{+{}+}}", "=": "{}"}
        return [" ".join(marks[op].format(words) for op, words in p) for p in self.word_changes]

    @property
    def meta(self) -> str:
        """Its facts on one line: "HKMA · Dated 2026-07-29 · CIR - Circular · Ref. B1/15C ·
        change 42" (the change id is what `review set` takes)."""
        parts = [self.regulator, f"Dated {self.date}" if self.date else "", self.doc_type]
        parts.append(f"Ref. {', '.join(self.references)}" if self.references else "")
        return " · ".join([p for p in parts if p] + [f"change {self.change_id}"])

    @property
    def new_version(self) -> str:
        """ "New version 20261020-70 (was 20190411-52)" when a register record's version (or
        its document number) moved; "" otherwise."""
        for name in ("extra.version", "extra.doc_id"):
            moved = next((c for c in self.changed if c.get("field") == name), None)
            if moved and moved.get("new"):
                was = f" (was {moved['old']})" if moved.get("old") else ""
                return f"New version {moved['new']}{was}"
        return ""

    @property
    def moved_dates(self) -> list[str]:
        """Dates to act on that moved: "Takes effect: 2026-03-01 → 2026-06-01"."""
        lines = []
        for c in self.changed:
            if c.get("field") in DATE_FIELDS:
                old, new = _dates(c.get("old")), _dates(c.get("new"))
                if old != new:
                    lines.append(f"{DATE_FIELDS[c['field']]}: {old or 'none'} → {new or 'none'}")
            elif c.get("field") == "extra.consultation":
                before, after = c.get("old") or {}, c.get("new") or {}
                if not (isinstance(before, dict) and isinstance(after, dict)):
                    continue
                for key, label in (
                    ("opens", "Consultation opens"),
                    ("closes", "Consultation closes"),
                ):
                    if before.get(key) != after.get(key):
                        was, now = before.get(key) or "none", after.get(key) or "none"
                        lines.append(f"{label}: {was} → {now}")
        return lines

    def _said_elsewhere(self, name: str) -> bool:
        """A field the entry already says in its own words (a new version, a moved date, the
        document's link where the listing links the document itself: the IA's guidelines)."""
        if name == "url":
            moved = {c.get("field"): (c.get("old"), c.get("new")) for c in self.changed}
            if "url" in moved and moved["url"] == moved.get("extra.document_url"):
                return True
        if name in VERSION_FIELDS:
            return bool(self.new_version)
        if name in DATE_FIELDS or name == "extra.consultation":
            return bool(self.moved_dates)
        return False

    @property
    def other_fields(self) -> list[str]:
        """Changed fields, named as an officer would, not shown as "field: old → new" below
        nor said otherwise (so none is named twice); word-level passages carry no name, so
        their fields stay here."""
        shown = {line.split(":", 1)[0] for line in self.value_changes}
        return [
            label
            for f in self.fields
            if not self._said_elsewhere(f) and (label := field_label(f)) not in shown
        ]

    @property
    def value_changes(self) -> list[str]:
        """Fields with a single value that moved: "Date: 2025-04-10 → 2025-12-15"."""
        return [
            f"{field_label(c['field'])}: {_shown(c.get('old'))} → {_shown(c.get('new'))}"
            for c in self.changed
            if "words" not in c
            and not self._said_elsewhere(c.get("field", ""))
            and ("old" in c or "new" in c)
            and _single(c.get("old"))
            and _single(c.get("new"))
            and (c.get("old") not in (None, "") or c.get("new") not in (None, ""))
        ]

    @property
    def publication(self) -> str:
        return publication(self.url)

    @property
    def href(self) -> str:
        """The link target, only ever http(s): a title is text, a link must not run code."""
        return safe_href(self.url)


def publication(url: str) -> str:
    """What was published, whichever source saw it: a BRDR doc id ("brdr:20250428-3"), else
    the URL."""
    match = _BRDR_DOC_ID.search(url)
    return f"brdr:{match.group(1)}" if match else url


def safe_href(url: str) -> str:
    """`url` if it is http(s), else "#": a link in a digest or report never runs code."""
    return url if url.startswith(("https://", "http://")) else "#"


def hkt(moment: str | None, missing: str = "") -> str:
    """A stored time (ISO, any offset) as Hong Kong time, marked: how every time is shown;
    `missing` when there is none."""
    if not moment:
        return missing
    return datetime.fromisoformat(moment).astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M HKT")


@functools.cache
def templates() -> Environment:
    """The digest's and the report's templates, loaded when first rendered: a command that
    renders none does not pay for Jinja2."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("alerts", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["dates_unbroken"] = _unbroken_dates
    environment.filters["href"] = safe_href
    environment.filters["hkt"] = hkt
    return environment


def standing(extra: dict[str, Any]) -> str:
    """A document's standing in words: "superseded by <title> (<BRDR id>)", "withdrawn from
    the current register", or "" when it is current."""
    by = extra.get("superseded_by")
    if extra.get("status") == "superseded":
        if isinstance(by, dict):
            return f"superseded by {by.get('title') or by.get('doc_id')} ({by.get('doc_id')})"
        return f"superseded by {by}" if by else "superseded"
    if extra.get("status") == "withdrawn":
        return "withdrawn from the current register"
    return ""


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Digest:
    """One digest: what changed, for whoever a channel delivers it to."""

    created_at: datetime
    entries: list[DigestEntry]
    note: str = ""  # e.g. why it comes late
    # Source name -> how to name it, in the order sections come (the caller knows the
    # sources; an unknown one is named as it is, after the known ones).
    source_titles: dict[str, str] = dataclasses.field(default_factory=dict)
    # Section key -> title, in the order sections come: entries carry their section
    # (`DigestEntry.group`); one without a section is listed under its source.
    group_titles: dict[str, str] = dataclasses.field(default_factory=dict)
    audience: str = ""  # whose digest, in words: the subscriber's filters
    # The subscriber's substantive changes still open (not yet reviewed), and when the oldest
    # of them was detected (ISO).
    open_reviews: int = 0
    oldest_open: str = ""
    open_reviews_at_least: bool = False  # the count stopped there: "N or more"
    calendar: bytes | None = None  # the deadlines calendar (.ics), attached to the email

    @classmethod
    def of_changes(
        cls,
        created_at: datetime,
        changes: list[dict[str, Any]],
        note: str = "",
        source_titles: dict[str, str] | None = None,
        group_titles: dict[str, str] | None = None,
        audience: str = "",
        open_reviews: tuple[int, str | None] = (0, None),
        calendar: bytes | None = None,
    ) -> Digest:
        """A digest of change events. A publication that several sources announce as new (the
        circulars feed, a topic page and BRDR; the press feed and the press API) is one entry
        naming the other sources."""
        entries: dict[tuple[str, str], DigestEntry] = {}
        merged: list[DigestEntry] = []
        for change in sorted(changes, key=lambda c: c["id"]):
            entry = DigestEntry.from_change(change)
            if entry.kind == "changed":
                # One document changed twice in a window (a BRDR revision: its listing, then
                # its PDF): one entry naming every field.
                twin = next(
                    (
                        i
                        for i, e in enumerate(merged)
                        if e.kind == "changed" and e.document_id == entry.document_id
                    ),
                    None,
                )
                if twin is not None and entry.document_id:
                    earlier = merged[twin]
                    fields = list(dict.fromkeys([*earlier.fields, *entry.fields]))
                    merged[twin] = dataclasses.replace(
                        entry, fields=fields, changed=(*earlier.changed, *entry.changed)
                    )
                    continue
            if entry.kind != "new":
                merged.append(entry)
                continue
            first = entries.get(("new", entry.publication))
            if first is None:
                entries[("new", entry.publication)] = entry
            elif entry.source == first.source:  # two documents of one source (LegCo items)
                merged.append(entry)
            elif entry.source not in first.also_in:
                also = dataclasses.replace(first, also_in=(*first.also_in, entry.source))
                entries[("new", entry.publication)] = also
        return cls(
            created_at,
            merged + list(entries.values()),
            note,
            dict(source_titles or {}),
            dict(group_titles or {}),
            audience,
            open_reviews=open_reviews[0],
            oldest_open=open_reviews[1] or "",
            calendar=calendar,
        )

    def _section(self, entry: DigestEntry) -> tuple[int, str]:
        groups, sources = list(self.group_titles), list(self.source_titles)
        if entry.group in self.group_titles:
            return groups.index(entry.group), entry.group
        rank = sources.index(entry.source) if entry.source in sources else len(sources)
        return len(groups) + rank, entry.source

    def groups(self) -> list[tuple[str, list[DigestEntry]]]:
        """Entries by section (`group_titles` order; an entry without one under its source,
        in `source_titles` order), newest first within a section (by the document's date),
        new before changed before removed on one date."""
        ordered = sorted(
            self.entries,
            key=lambda e: (
                self._section(e),
                -_day(e.date),
                KIND_ORDER.get(e.kind, 9),
                -e.change_id,
            ),
        )
        return [
            (self.group_titles.get(key, self.titles([key])[0]), list(entries))
            for (_, key), entries in groupby(ordered, key=self._section)
        ]

    def summary(self) -> dict[str, Any]:
        """What an officer reads first: counts by kind, regulator and function, what takes
        effect and which consultations close within 30 days of the digest (date, title),
        soonest first."""
        today = self.created_at.astimezone(HONG_KONG).date()

        def within(day: str) -> bool:
            return bool(day) and today <= _date(day) <= today + SOON

        soon = sorted((e.effective, e.title) for e in self.entries if within(e.effective))
        closing = sorted((e.closes, e.title) for e in self.entries if within(e.closes))
        by_function = Counter(f for e in self.entries for f in e.functions)
        by_regulator = Counter(e.regulator for e in self.entries)
        days_open = (
            (self.created_at - datetime.fromisoformat(self.oldest_open)).days
            if self.open_reviews and self.oldest_open
            else 0
        )
        return {
            "kinds": self.counts(),
            "untagged": sum(e.group == UNTAGGED for e in self.entries),
            "dates_moved": [(e.title, line) for e in self.entries for line in e.moved_dates],
            "functions": dict(sorted(by_function.items(), key=lambda kv: (-kv[1], kv[0]))),
            "regulators": dict(sorted(by_regulator.items(), key=lambda kv: (-kv[1], kv[0]))),
            "effective_soon": soon,
            "closing_soon": closing,
            "open_reviews": self.open_reviews,
            "open_reviews_words": (
                f"{self.open_reviews} or more changes"
                if self.open_reviews_at_least
                else f"{self.open_reviews} change{'s' if self.open_reviews != 1 else ''}"
            ),
            "days_open": days_open,
        }

    @property
    def deadlines_changed(self) -> bool:
        """Whether an entry brings, moves or ends a deadline (a calendar worth attaching)."""
        return any(
            e.effective
            or e.closes
            or any(f in DEADLINE_FIELDS for f in e.fields)
            or (e.standing and e.kind == "changed")
            for e in self.entries
        )

    @property
    def generated(self) -> str:
        """When it was made, in Hong Kong time, marked."""
        return self.created_at.astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M HKT")

    def titles(self, sources: Iterable[str]) -> list[str]:
        return [self.source_titles.get(s, s) for s in sources]

    def counts(self) -> dict[str, int]:
        return {k: n for k in KIND_ORDER if (n := sum(e.kind == k for e in self.entries))}

    @property
    def subject(self) -> str:
        """Short, with the count; a single change's title is named (one line, cut at 80)."""
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items())
        total = len(self.entries)
        if total == 1:
            title = " ".join(self.entries[0].title.split())  # no CR/LF can reach the header
            title = title if len(title) <= 80 else title[:79] + "…"
            return f"HKMA tracker: {self.entries[0].kind} – {title}"
        return f"HKMA tracker: {total} change{'s' if total != 1 else ''} ({counts})"

    def render_text(self) -> str:
        return templates().get_template("digest.txt").render(digest=self)

    def render_html(self) -> str:
        return templates().get_template("digest.html").render(digest=self)

    def to_email(
        self, sender: str, recipients: list[str], message_id: str | None = None
    ) -> EmailMessage:
        """multipart/alternative, text then HTML. Header values come only from our own strings
        and counts (never from titles); the email library refuses CR/LF in them."""
        message = EmailMessage()
        message["Subject"] = self.subject
        message["From"] = sender
        if recipients:
            message["To"] = ", ".join(recipients)
        message["Date"] = format_datetime(self.created_at)
        message["Message-ID"] = message_id or make_msgid(domain="hkma-tracker.local")
        message.set_content(self.render_text())
        message.add_alternative(self.render_html(), subtype="html")
        if self.calendar:
            message.add_attachment(
                self.calendar, maintype="text", subtype="calendar", filename=CALENDAR_FILE
            )
        return message

    def payload(self, fmt: str) -> dict[str, Any]:
        """The JSON body of a webhook: plain JSON, a Slack message or a Teams message card."""
        if fmt == "slack":  # Slack mrkdwn: &, < and > must be escaped in text
            lines = [
                f"• {e.kind}: <{e.href}|{_slack(e.title)}>"
                + (f" ({', '.join(e.fields)})" if e.fields else "")
                for e in self.entries
            ]
            return {"text": "\n".join([_slack(self.subject), *lines])}
        if fmt == "teams":
            lines = [f"**{e.kind}** [{html.escape(e.title)}]({e.href})" for e in self.entries]
            return {
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": self.subject,
                "title": self.subject,
                "text": "<br>".join(lines),
            }
        return {
            "subject": self.subject,
            "note": self.note,
            "changes": [
                {
                    "kind": e.kind,
                    "regulator": e.regulator,
                    "source": e.source,
                    "title": e.title,
                    "url": e.url,
                    "date": e.date,
                    "fields": e.fields,
                    "tags": list(e.tags),
                }
                for e in self.entries
            ],
        }


def notice_payload(fmt: str, subject: str, text: str) -> dict[str, Any]:
    """The JSON body of a webhook for a plain notice (an operator alert): as `fmt` wants it."""
    if fmt == "slack":
        return {"text": _slack(f"{subject}\n{text}")}
    if fmt == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": subject,
            "title": subject,
            "text": html.escape(text).replace("\n", "<br>"),
        }
    return {"subject": subject, "text": text}


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


MAX_PASSAGES = 3  # word-level passages shown per entry


EXCERPT_CHARS = 240


def _excerpt(text: str) -> str:
    """The start of a text, cut at a word, for a new document's entry."""
    text = " ".join(text.split())
    if len(text) <= EXCERPT_CHARS:
        return text
    return text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"


def hong_kong_day(moment: str | None) -> str:
    """The Hong Kong date of a stored time ("" without one): an officer's act at 00:30 HKT
    is on that day."""
    return datetime.fromisoformat(moment).astimezone(HONG_KONG).date().isoformat() if moment else ""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return date.min


def _day(text: str | None) -> int:
    """A document date as a number that sorts (undated last when sorted newest first)."""
    return _date(text).toordinal() if text else 0


def _dates(value: Any) -> str:
    """The dates of a list of {date, sentence} as one line."""
    if not isinstance(value, list):
        return ""
    return ", ".join(str(d.get("date")) for d in value if isinstance(d, dict) and d.get("date"))


def _single(value: Any) -> bool:
    """A value shown on one line: text of one line, a number, nothing."""
    return (
        value is None
        or isinstance(value, int | float)
        or (isinstance(value, str) and "\n" not in value and len(value) <= 200)
    )


def _shown(value: Any) -> str:
    return "(none)" if value in (None, "") else str(value)
