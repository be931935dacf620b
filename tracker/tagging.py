"""Tags by function, product and entity type, with the evidence for each: a pure function of a
document and a taxonomy (tracker/taxonomy.toml, overridable with `[tagging] taxonomy`)."""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.records import KINDS, Snapshot, TagSet
from tracker.extract import SPM_CODE, subject_line

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.toml")
RULE_KEYS = {
    "strong",
    "weak",
    "patterns",
    "brdr_topics",
    "spm_prefixes",
    "sources",
    "feeds",
    "pages",
    "addressees",
    "aliases",
}
_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff]")


class TaxonomyError(ValueError):
    """The taxonomy file is unusable; the message names the file, tag and key."""


@dataclass(frozen=True)
class Term:
    label: str  # how evidence names it
    regex: re.Pattern[str]
    # The literal, casefolded: a cheap substring test that rules the term out of most long
    # texts before its regex runs (None for regular expressions).
    needle: str | None = None


# How BRDR may join a topic and its subtopic in one name (`topicSubtopicDesc`, whose form is
# unverified): "AML & CFT - Financial Sanctions" is matched as both names.
_TOPIC_JOINS = re.compile(r"\s*[:>|]\s*|\s+[-–]\s+")


def _topic_names(topic: str) -> set[str]:
    """A BRDR topic as the names a taxonomy may list: whole, and each part if joined."""
    whole = topic.strip().lower()
    return {whole, *(part.strip() for part in _TOPIC_JOINS.split(whole) if part.strip())}


def _term(text: str) -> Term:
    if _CJK.search(text):  # Chinese has no word boundaries to respect
        return Term(text, re.compile(re.escape(text)), text.casefold())
    pattern = re.compile(rf"(?<![\w]){re.escape(text)}(?![\w])", re.IGNORECASE)
    return Term(text, pattern, text.casefold())


def _pattern(text: str, where: str) -> re.Pattern[str]:
    if any(ord(c) < 32 for c in text):
        raise TaxonomyError(
            f"{where}: pattern {text!r} holds a control character: in a double-quoted TOML "
            "string \\b is a backspace; write patterns in single quotes ('\\bword\\b')"
        )
    try:
        return re.compile(text)
    except re.error as error:
        raise TaxonomyError(f"{where}: bad pattern {text!r}: {error}") from error


@dataclass(frozen=True)
class TagRule:
    kind: str
    name: str
    strong: tuple[Term, ...]
    weak: tuple[Term, ...]
    brdr_topics: frozenset[str]
    spm_prefixes: frozenset[str]
    sources: frozenset[str]
    feeds: frozenset[str]
    pages: tuple[str, ...]
    addressees: frozenset[str]
    aliases: tuple[str, ...] = ()  # other names a filter may give it (AML for AML/CFT)


@dataclass(frozen=True)
class Taxonomy:
    version: str
    threshold: float
    max_mentions: int
    weights: dict[str, float]
    rules: tuple[TagRule, ...]
    # Matched and removed before any rule: the organisation's name, speakers' bylines.
    not_subject: tuple[re.Pattern[str], ...] = ()

    def subject(self, text: str) -> str:
        """`text` without what names the organisation or a speaker rather than a subject."""
        for pattern in self.not_subject:
            text = pattern.sub(" ", text)
        return text

    def names(self, kind: str) -> list[str]:
        return [r.name for r in self.rules if r.kind == kind]

    def vocabulary(self, kind: str) -> dict[str, str]:
        """What a filter of `kind` accepts: each name and its aliases, casefolded -> name."""
        accepted = {}
        for rule in self.rules:
            if rule.kind == kind:
                accepted.update({a.casefold(): rule.name for a in (*rule.aliases, rule.name)})
        return accepted


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and check a taxonomy file (the shipped one by default), once per process for as
    long as the file stays the same."""
    path = Path(path or DEFAULT_TAXONOMY)
    try:
        stat = path.stat()
    except OSError as error:
        raise TaxonomyError(f"taxonomy {path}: {error}") from error
    return _load_taxonomy(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_taxonomy(path: Path, mtime_ns: int, size: int) -> Taxonomy:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TaxonomyError(f"taxonomy {path}: {error}") from error
    unknown = set(data) - {"version", "threshold", "max_mentions", "weights", "not_subject", *KINDS}
    if unknown:
        raise TaxonomyError(f"taxonomy {path}: unknown key {sorted(unknown)[0]!r}")
    weights = {"title": 3.0, "text": 1.0, "weak_title": 1.5, "weak_text": 0.5, "metadata": 3.0}
    weights.update(data.get("weights", {}))
    rules = []
    for kind in KINDS:
        for name, spec in data.get(kind, {}).items():
            where = f"taxonomy {path}: {kind}.{name!r}"
            if not isinstance(spec, dict):
                raise TaxonomyError(f"{where} must be a table")
            if bad := set(spec) - RULE_KEYS:
                raise TaxonomyError(f"{where}: unknown key {sorted(bad)[0]!r}")
            patterns = tuple(Term(p, _pattern(p, where)) for p in spec.get("patterns", []))
            rules.append(
                TagRule(
                    kind=kind,
                    name=name,
                    strong=tuple(_term(t) for t in spec.get("strong", [])) + patterns,
                    weak=tuple(_term(t) for t in spec.get("weak", [])),
                    brdr_topics=frozenset(t.lower() for t in spec.get("brdr_topics", [])),
                    spm_prefixes=frozenset(spec.get("spm_prefixes", [])),
                    sources=frozenset(spec.get("sources", [])),
                    feeds=frozenset(spec.get("feeds", [])),
                    pages=tuple(spec.get("pages", [])),
                    addressees=frozenset(a.lower() for a in spec.get("addressees", [])),
                    aliases=tuple(spec.get("aliases", [])),
                )
            )
    for kind in KINDS:
        spelled: dict[str, str] = {}
        for rule in (r for r in rules if r.kind == kind):
            for alias in (rule.name, *rule.aliases):
                if spelled.setdefault(alias.casefold(), rule.name) != rule.name:
                    raise TaxonomyError(
                        f"taxonomy {path}: {kind}: {alias!r} names both "
                        f"{spelled[alias.casefold()]!r} and {rule.name!r}"
                    )
    where = f"taxonomy {path}: not_subject"
    not_subject = tuple(_pattern(p, where) for p in data.get("not_subject", []))
    return Taxonomy(
        not_subject=not_subject,
        version=str(data.get("version", "unversioned")),
        threshold=float(data.get("threshold", 3.0)),
        max_mentions=int(data.get("max_mentions", 3)),
        weights=weights,
        rules=tuple(rules),
    )


@dataclass(frozen=True)
class Taggable:
    """What the tagger reads of a document."""

    title: str
    text: str = ""
    source: str = ""
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    document: dict[str, Any] | None = None

    @classmethod
    def of(cls, source: str, snapshot: Any) -> Taggable:
        """From a stored or crawled Snapshot (title, text, extra, document)."""
        return cls(
            snapshot.title, snapshot.text, source, snapshot.url, snapshot.extra, snapshot.document
        )


def _metadata_evidence(rule: TagRule, doc: Taggable) -> list[str]:
    found = []
    extra, document = doc.extra, doc.document or {}
    if doc.source in rule.sources:
        found.append(f"source {doc.source}")
    # A feed named alone is that feed of any source; "source:feed" that source's only (the
    # SFC's and the IA's listings are named "circulars" too, and are not addressed to banks).
    feed = extra.get("feed")
    if feed and (feed in rule.feeds or f"{doc.source}:{feed}" in rule.feeds):
        found.append(f"feed {feed}")
    page = str(extra.get("page") or (doc.url if extra.get("kind") == "topic-page" else ""))
    found += [f"listed on topic page {p}" for p in rule.pages if p in page]
    found += [
        f"BRDR topic {t}" for t in extra.get("topics", []) if _topic_names(t) & rule.brdr_topics
    ]
    codes = [
        extra.get("spm_code") or "",
        *SPM_CODE.findall(doc.title),
        *document.get("spm_codes", []),
    ]
    found += [
        f"SPM module {code}"
        for code in dict.fromkeys(codes)
        if code and code.split("-", 1)[0] in rule.spm_prefixes
    ]
    found += [
        f"addressed to {a}" for a in document.get("addressees", []) if a.lower() in rule.addressees
    ]
    return found


Evidence = dict[str, Any]  # {"rule": ..., "where": title|text|metadata, "weight": ...}


def _score(
    rule: TagRule, doc: Taggable, body: str, folded: str, subject: str, taxonomy: Taxonomy
) -> tuple[float, list[Evidence]]:
    weights = taxonomy.weights
    evidence: list[Evidence] = []
    for terms, title_weight, text_weight, strength in (
        (rule.strong, weights["title"], weights["text"], "strong"),
        (rule.weak, weights["weak_title"], weights["weak_text"], "weak"),
    ):
        for term in terms:
            if term.regex.search(doc.title):
                evidence.append(
                    {"rule": f"{strength} {term.label!r}", "where": "title", "weight": title_weight}
                )
            elif subject and term.regex.search(subject):
                # The document's own heading names its subject as its title does.
                evidence.append(
                    {
                        "rule": f"{strength} {term.label!r}",
                        "where": "subject line",
                        "weight": title_weight,
                    }
                )
            elif body and (term.needle is None or term.needle in folded):
                mentions = min(len(term.regex.findall(body)), taxonomy.max_mentions)
                if mentions:
                    evidence.append(
                        {
                            "rule": f"{strength} {term.label!r} ×{mentions}",
                            "where": "text",
                            "weight": text_weight * mentions,
                        }
                    )
    for found in _metadata_evidence(rule, doc):
        evidence.append({"rule": found, "where": "metadata", "weight": weights["metadata"]})
    return sum(e["weight"] for e in evidence), evidence


def tag(doc: Taggable, taxonomy: Taxonomy) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """kind -> tag -> evidence (the rules that matched, where, with what weight).

    Only tags whose evidence weighs at least the taxonomy's threshold are returned.
    """
    document_text = (doc.document or {}).get("text", "")
    body = taxonomy.subject(" ".join(filter(None, [doc.text, document_text])))
    folded = body.casefold()
    subject = taxonomy.subject(subject_line(document_text))
    doc = dataclasses.replace(doc, title=taxonomy.subject(doc.title))
    result: dict[str, dict[str, list[dict[str, Any]]]] = {kind: {} for kind in KINDS}
    for rule in taxonomy.rules:
        score, evidence = _score(rule, doc, body, folded, subject, taxonomy)
        if score >= taxonomy.threshold:
            result[rule.kind][rule.name] = evidence
    return result


@dataclass(frozen=True)
class Tagger:
    """The tagger storage is handed (storage.records.Tagger): a taxonomy, applied to a
    document version of a source."""

    taxonomy: Taxonomy

    @property
    def version(self) -> str:
        return self.taxonomy.version

    def __call__(self, source: str, snapshot: Snapshot) -> TagSet:
        return tag(Taggable.of(source, snapshot), self.taxonomy)
