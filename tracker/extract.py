"""Fields read from a document's text: reference numbers, addressees, SPM codes, effective
dates and supersession wording. Pure functions, tested with tables."""

from __future__ import annotations

import re
from typing import Any

from spiders.normalize import parse_listing_date

# Circular reference numbers as HKMA prints them: "B1/15C", "B9/29C", "B10/1C".
REFERENCE = re.compile(r"\b([A-Z]{1,2}\d{1,2}/\d{1,3}[A-Z]{0,2})\b")
_ADDRESSEE = re.compile(
    r"\bAll\s+(authori[sz]ed\s+institutions|licensed\s+banks|restricted\s+licence\s+banks|"
    r"deposit[- ]taking\s+companies|(?:licensed\s+)?stored\s+value\s+facility\s+licensees|"
    r"SVF\s+licensees|licensed\s+stablecoin\s+issuers|approved\s+money\s+brokers|"
    r"money\s+brokers|registered\s+institutions|local\s+banks|"
    r"licensed\s+insurance\s+intermediaries)\b",
    re.IGNORECASE,
)
# Supervisory Policy Manual module codes: "IC-6", "CR-G-7", "CA-B-3", "CRP-1".
SPM_FAMILIES = (
    "CA|CB|CG|CR|CRP|CS|DS|IB|IC|IR|LI|LM|MA|OR|RE|RR|SA|SB|TB|TM|GS|FX|SR|CM|IP|MC|SP|VA"
)
SPM_CODE = re.compile(rf"\b((?:{SPM_FAMILIES})-(?:[A-Z]-)?\d{{1,2}})\b")
# A sentence ends at . ! ? ; before a capital or an opening quote ("Ref.: B1/15C" does not).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+(?=[A-Z“\"(])")
_EFFECTIVE = re.compile(
    r"\b(effective|take[sn]?\s+effect|taking\s+effect|with\s+effect\s+from|"
    r"come[s]?\s+into\s+(?:effect|operation|force)|commence[sd]?)\b",
    re.IGNORECASE,
)
_MONTHS = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)"
)
_DATE = re.compile(rf"\b(\d{{1,2}}\s+{_MONTHS}\s+\d{{4}}|{_MONTHS}\s+\d{{1,2}},\s+\d{{4}})\b")
# "Please send comments to ... by 30 June 2026", "The consultation period ends on ...".
_CLOSES = re.compile(
    r"\b(consultation|comments?|views|feedback|submissions?|responses?)\b.*?"
    r"\b(by|before|no\s+later\s+than|until|end[s]?\s+on|close[s]?\s+on|deadline)\b",
    re.IGNORECASE,
)
_SUPERSEDE = re.compile(
    r"\b(supersed(?:e|es|ed|ing)|replac(?:e|es|ed|ing)|revised|revision|amended)\b",
    re.IGNORECASE,
)
# A letter's salutation, and the words its first sentence opens with in HKMA circulars: the
# subject heading lies between the two. Stored texts are flattened (runs of whitespace
# collapsed), so no line break marks where the heading ends.
_SALUTATION = re.compile(
    r"\bDear\s+(?:Sirs?|Madam)(?:\s*/\s*(?:Sir|Madam))?\s*[,:]?\s*", re.IGNORECASE
)
_FIRST_SENTENCE = re.compile(
    r"\n|\b(?:I\s+am\s+writing|I\s+write|I\s+refer|We\s+are\s+writing|We\s+write|"
    r"Further\s+to|Reference\s+is\s+made|With\s+reference|This\s+circular|"
    r"The\s+purpose\s+of\s+this|Please\s+(?:be\s+)?(?:note|informed|find)|"
    r"(?:The\s+)?(?:Hong\s+Kong\s+)?Monetary\s+Authority\s+(?:has|is|would|wishes)|"
    r"The\s+HKMA\s+(?:has|is|would|wishes))\b"
)
SUBJECT_SEARCHED = 5000  # characters from the start: a letter's salutation comes early
MAX_SUBJECT = 200
MAX_MENTIONS = 10
MAX_SENTENCE = 400


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s.strip()]


def _iso(date_text: str) -> str | None:
    cleaned = re.sub(r"(\w+)\s+(\d{1,2}),\s+(\d{4})", r"\2 \1 \3", date_text).replace("Sept", "Sep")
    parsed = parse_listing_date(cleaned)
    return parsed.isoformat() if parsed else None


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def document_fields(text: str) -> dict[str, Any]:
    """Structured fields of a document's text, each a list (empty when not found)."""
    sentences = _sentences(text)
    effective, closes = [], []
    for sentence in sentences:
        dated = [
            {"date": iso, "sentence": sentence[:MAX_SENTENCE]}
            for found in _DATE.findall(sentence)
            if (iso := _iso(found))
        ]
        if _EFFECTIVE.search(sentence):
            effective += dated
        elif _CLOSES.search(sentence):
            closes += dated
    fields: dict[str, Any] = {
        "references": _unique(REFERENCE.findall(text)),
        "addressees": _unique(
            ["All " + re.sub(r"\s+", " ", m.group(1)).lower() for m in _ADDRESSEE.finditer(text)]
        ),
        "spm_codes": _unique(SPM_CODE.findall(text)),
        "effective_dates": effective[:MAX_MENTIONS],
        "supersession_mentions": [s[:MAX_SENTENCE] for s in sentences if _SUPERSEDE.search(s)][
            :MAX_MENTIONS
        ],
    }
    if closes:  # only when found: documents read before this field existed do not change
        fields["consultation_closes"] = closes[:MAX_MENTIONS]
    return fields


def subject_line(text: str) -> str:
    """A circular's subject heading: what stands between its salutation ("Dear Sir /
    Madam,") and the words its first sentence opens with ("I am writing to ..."), if that
    reads as a heading (short, no sentence in it); "" otherwise."""
    return _subject(text)[0]


def from_subject(text: str) -> str:
    """`text` from its subject heading on (a letter's reference, date and addressee lines
    left out), or "" when it has none."""
    subject, start = _subject(text)
    return text[start:] if subject else ""


def _subject(text: str) -> tuple[str, int]:
    found = _SALUTATION.search(text[:SUBJECT_SEARCHED])
    if not found:
        return "", -1
    start = found.end()
    while start < len(text) and text[start].isspace():
        start += 1
    rest = text[start : start + MAX_SUBJECT + 1]
    opening = _FIRST_SENTENCE.search(rest)
    if not opening:
        return "", -1
    heading = " ".join(rest[: opening.start()].split()).strip(" ,;:-")
    if not heading or ". " in heading or heading.endswith("."):
        return "", -1
    return heading, start
