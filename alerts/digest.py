"""The digest: change events grouped for reading, rendered as plain text, HTML and an email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from itertools import groupby
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

SOURCE_NAMES = {"rss": "HKMA RSS feeds", "pages": "HKMA topic pages"}
KIND_ORDER = {"new": 0, "changed": 1, "removed": 2}
DIFF_PREVIEW_LINES = 12

_templates = Environment(
    loader=PackageLoader("alerts", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class DigestEntry:
    change_id: int
    kind: str
    source: str
    title: str
    url: str
    date: str | None
    fields: list[str]
    diff: str
    detected_at: str

    @classmethod
    def from_change(cls, change: dict[str, Any]) -> DigestEntry:
        return cls(
            change["id"],
            change["kind"],
            change["source"],
            change["title"],
            change["url"],
            change["date"],
            change["fields"],
            change["diff"],
            change["detected_at"],
        )

    @property
    def href(self) -> str:
        """The link target, only ever http(s): a title is text, a link must not run code."""
        return self.url if self.url.startswith(("https://", "http://")) else "#"

    @property
    def diff_preview(self) -> list[str]:
        lines = self.diff.splitlines()
        if len(lines) > DIFF_PREVIEW_LINES:
            return [*lines[:DIFF_PREVIEW_LINES], f"… {len(lines) - DIFF_PREVIEW_LINES} more lines"]
        return lines


@dataclass(frozen=True)
class Digest:
    """One digest: what changed, for whoever a channel delivers it to."""

    created_at: datetime
    entries: list[DigestEntry]

    def groups(self) -> list[tuple[str, list[DigestEntry]]]:
        """Entries by source, then new / changed / removed, newest first within a kind."""
        ordered = sorted(
            self.entries, key=lambda e: (e.source, KIND_ORDER.get(e.kind, 9), -e.change_id)
        )
        return [
            (SOURCE_NAMES.get(source, source), list(entries))
            for source, entries in groupby(ordered, key=lambda e: e.source)
        ]

    def counts(self) -> dict[str, int]:
        return {k: n for k in KIND_ORDER if (n := sum(e.kind == k for e in self.entries))}

    @property
    def subject(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items())
        total = len(self.entries)
        return f"HKMA tracker: {total} change{'s' if total != 1 else ''} ({counts})"

    def render_text(self) -> str:
        return _templates.get_template("digest.txt").render(digest=self)

    def render_html(self) -> str:
        return _templates.get_template("digest.html").render(digest=self)

    def to_email(self, sender: str, recipients: list[str]) -> EmailMessage:
        """multipart/alternative, text then HTML. Header values come only from our own strings
        and counts; the email library refuses CR/LF in them."""
        message = EmailMessage()
        message["Subject"] = self.subject
        message["From"] = sender
        if recipients:
            message["To"] = ", ".join(recipients)
        message["Date"] = format_datetime(self.created_at)
        message["Message-ID"] = make_msgid(domain="hkma-tracker.local")
        message.set_content(self.render_text())
        message.add_alternative(self.render_html(), subtype="html")
        return message
