"""Rule records: which publications belong to one rule or initiative.

A record grows as the regulator publishes: a press release launches an initiative, a circular
sets its arrangements, a consultation is followed by its conclusions. Publications join a record
on evidence, strongest first:
- the same key: an SPM module (any version), a BRDR document and its supersession or version
  chain, a document its text names by title (`doc:<id>`). Reference numbers join nothing:
  HKMA's ("B1/15C") are file references printed on every circular of a file;
- a shared name: what two titles have in common, weighted by how rare its words are across the
  whole history (an initiative's name, "GenA.I. Sandbox", "Money Safe", is rare; "consultation",
  "revised", "Hong Kong" are not), within a time window.
What only a weak name match links is a related record, not a join. The linker (`group`,
`records_of`) is pure and measured on hand-labelled threads of real feed items
(`bench/records.py`); `update_records`, `record_view`, `record_context` and `links_for` read
and write through `storage/rule_records.py`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Any

import sqlite_utils

from alerts.digest import publication as url_publication
from spiders.normalize import base_id
from storage.records import Link, LinksOf, Snapshot
from storage.rule_records import (
    document_titles,
    record_corrections,
    record_documents,
    record_inputs,
    record_publications,
    record_row,
    register_versions,
    related_records,
    save_records,
)
from tracker.extract import SPM_CODE, from_subject
from tracker.rules import links_of

# Noise around a title's subject: the PDF size note, a speech's byline, an annex's own title.
_PDF_NOTE = re.compile(r"\s*\((?:PDF|Word|Excel) File[^)]*\)", re.IGNORECASE)
_CHINESE = re.compile(r"\s*\(Chinese version\)", re.IGNORECASE)
_BYLINE = re.compile(r"\s+by\s+[^,]+,[^,]*(?:,\s*Hong Kong Monetary Authority)\s*$")
_ANNEX = re.compile(r"\s+(?:Annex|Enclosure|Encl\.)(?:\s*\d+)?\s*:.*$", re.IGNORECASE)
_ADDRESSEE = re.compile(r"^Letter to [A-Z]{2,}\s*:\s*")  # "Letter to HKAB: ..."
# A title's head: what comes before its colon or dash ("Cryptoassets standard: gazettal of
# revised SPM modules", "Basel III Final Reform Package – New and Amended Codes of Practice").
_HEAD = re.compile(r"^([^:–]{3,80}?)\s*(?::|\s–\s)")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z]\.?)*")
# Words that carry grammar, not subject.
_GRAMMAR = (
    "a an and are as at be by for from in into is it its of on or over the their to under "
    "with within amid after before about between this that these those our your"
)
_STOP = frozenset(_GRAMMAR.split())


def subject(title: str) -> str:
    """A title without what is not its subject: PDF note, byline, addressee, annex title."""
    title = _PDF_NOTE.sub("", title)
    title = _CHINESE.sub("", title)
    title = _BYLINE.sub("", title)
    title = _ADDRESSEE.sub("", title)
    return _ANNEX.sub("", title).strip()


def _raw_words(text: str) -> list[str]:
    """Words as written, a series number dropped ("FiNETech8" -> "FiNETech"); an acronym
    written with dots keeps them ("A.I.", which is not "AI", authorized institutions)."""
    words = []
    for word in _WORD.findall(text):
        word = re.sub(r"(?<=[A-Za-z])\d+[A-Za-z]?$", "", word)
        dotted = re.search(r"(?:[A-Z]\.){2,}$", word)  # "A.I.", "GenA.I."
        words.append(word if dotted else word.replace(".", ""))
    return words


def _initials(acronym: str) -> str:
    """The letters an acronym's spelling starts its words with: its capitals where it mixes
    cases ("CCyB", Countercyclical Capital Buffer), else its letters ("A.I.")."""
    letters = acronym.replace(".", "")
    return "".join(c for c in letters if c.isupper()) if not letters.isupper() else letters


def acronyms(titles: Iterable[str]) -> dict[str, list[str]]:
    """What the acronyms of a history stand for, read from the history itself: an acronym
    ("PAPT", "IRRBB", "A.I.") is the initials of capitalised words other titles spell out
    ("Payment Arrangements for Property Transactions"; grammar words skipped). A definition
    ("Distributed Ledger Technology (DLT)") decides. Otherwise the spelling whose titles share
    the most uncommon words with the acronym's titles wins, if it shares at least two and more
    than any other spelling (initials match words by chance; context does not); a two-letter
    acronym needs its dots or a definition."""
    sources = [_raw_words(_BYLINE.sub("", _CHINESE.sub("", _PDF_NOTE.sub("", t)))) for t in titles]
    df = Counter(w for words in sources for w in {x.lower() for x in words})
    common = max(3, len(sources) // 100)

    def uncommon(words: list[str]) -> set[str]:
        return {w.lower() for w in words if w.lower() not in _STOP and df[w.lower()] <= common}

    by_letters: dict[str, set[str]] = defaultdict(set)
    context: dict[str, set[str]] = defaultdict(set)  # acronym or spelling -> words around it
    for words in sources:
        for word in words:
            letters = _initials(word)
            if letters.isalpha() and sum(c.isupper() for c in letters) >= 2:
                by_letters[letters].add(word)
                context[word] |= uncommon(words)
    defined: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    spellings: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for words in sources:
        content = [(n, w) for n, w in enumerate(words) if w.lower() not in _STOP]
        for start in range(len(content)):
            initials = ""
            for end in range(start, min(start + 8, len(content))):
                word = content[end][1]
                if not word[0].isupper() or _initials(word) in by_letters:
                    break
                initials += word[0]
                if end == start or initials not in by_letters:
                    continue
                spelling = tuple(w.lower() for _, w in content[start : end + 1])
                context[" ".join(spelling)] |= uncommon(words) - set(spelling)
                after = content[end][0] + 1
                for acronym in by_letters[initials]:
                    spellings[acronym].add(spelling)
                    if after < len(words) and words[after] == acronym:
                        defined[acronym][spelling] += 1
    found: dict[str, list[str]] = {}
    for acronym, candidates in spellings.items():
        if defined[acronym]:
            found[acronym] = list(defined[acronym].most_common(1)[0][0])
            continue
        if len(_initials(acronym)) < 3 and "." not in acronym:
            continue
        around = context[acronym] - {acronym.lower()}
        scored = sorted(((len(around & context[" ".join(c)]), c) for c in candidates), reverse=True)
        (best, spelling), *rest = scored
        if best >= 2 and (not rest or best > rest[0][0]):
            found[acronym] = list(spelling)
    return found


def phrases(title: str, spelled: dict[str, list[str]]) -> list[list[str]]:
    """A title's subject as runs of lowercase content words, acronyms spelled out: a grammar
    word ends a run, and so does an acronym's spelling (its words are a run of their own)."""
    runs: list[list[str]] = [[]]
    for word in _raw_words(subject(title)):
        gen = re.fullmatch(r"Gen((?:[A-Z]\.?){2,})", word)  # GenA.I.: generative A.I.
        expanded = (
            ["generative", *spelled[gen.group(1)]] if gen and gen.group(1) in spelled else None
        )
        expanded = expanded or spelled.get(word)
        if expanded:
            runs += [[stem(w) for w in expanded], []]
        elif word.lower() in _STOP or len(word) == 1:  # a grammar word, or the s of "Kong's"
            runs.append([])
        else:
            runs[-1].append(stem(word.lower()))
    return [run for run in runs if run]


_SUFFIXES = (("ations", ""), ("ation", ""), ("ings", ""), ("ing", ""), ("ies", "y"), ("s", ""))


def stem(word: str) -> str:
    """A word without the endings that make "consult", "consultation" and "consultations",
    or "rule" and "rules", look different."""
    for suffix, replacement in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + replacement
    return word


def terms(runs: Sequence[Sequence[str]]) -> set[str]:
    """Single words and adjacent pairs within a run: a pair ("money safe") says more than its
    words."""
    found: set[str] = set()
    for run in runs:
        found.update(run)
        found.update(f"{a} {b}" for a, b in pairwise(run))
    return found


@dataclass(frozen=True)
class Publication:
    """What the linker knows of one publication (however many listings carried it)."""

    id: str
    title: str
    date: str | None = None
    kind: str = ""  # press release, circular, consultation, speech, guideline, ...
    keys: frozenset[str] = frozenset()  # spm:, brdr:, doc: keys join (JOINING_KEYS); others not


@dataclass(frozen=True)
class Join:
    """Why two publications share a record (or, weaker, are related)."""

    a: str
    b: str
    evidence: str
    strength: float


@dataclass
class Grouping:
    records: list[list[str]]  # publication ids per record, oldest first
    joins: list[Join] = field(default_factory=list)
    related: list[Join] = field(default_factory=list)


# Keys that join: an SPM module, a BRDR document (and its chain), a document (held by itself
# and by the documents whose text names its title). Reference numbers never join.
JOINING_KEYS = ("spm:", "brdr:", "doc:")
# A reference number more documents than this carry is a file reference ("B1/15C"): `rule`
# lists the records that carry it instead of one timeline.
FILE_REFERENCE_AT = 3
# Name matches (NameModel.similarity): the score that joins two publications, the one that only
# relates their records, and the window in days within which a name joins.
JOIN_SIMILARITY = 0.5
RELATED_SIMILARITY = 0.3
NAME_WINDOW_DAYS = 730
# Publications of two kinds (not speeches) issued within a day of each other: one announces the
# other, and this weaker score joins them.
ANNOUNCED_SIMILARITY = 0.35
ANNOUNCED_WITHIN_DAYS = 1
# Publications of each record compared when two records of several merge by a name.
LINKAGE_SAMPLE = 12


def _days(a: str | None, b: str | None) -> int | None:
    if not a or not b:
        return None
    return abs((date.fromisoformat(a[:10]) - date.fromisoformat(b[:10])).days)


def title_keys(title: str) -> set[str]:
    """The SPM modules a title names."""
    return {f"spm:{code}" for code in SPM_CODE.findall(title)}


_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
# A sum of money: a fine's amount names its case ("SFC reprimands and fines ... HK$4.2 million").
_AMOUNT = re.compile(r"(?:HK\$|US\$|RMB|\$)\s?\d[\d,.]*\s*(?:million|billion)?", re.IGNORECASE)

Edition = tuple[frozenset[str], frozenset[str], frozenset[str]]


def edition(p: Publication) -> Edition:
    """The SPM modules, the years and the sums of money a publication's title names (one
    survey, summit, module or enforcement case each, however alike their wording)."""
    modules = {k for k in p.keys | title_keys(p.title) if k.startswith("spm:")}
    title = subject(p.title)
    amounts = {" ".join(a.lower().replace(",", "").split()) for a in _AMOUNT.findall(title)}
    return frozenset(modules), frozenset(_YEAR.findall(title)), frozenset(amounts)


def _editions_differ(a: Edition, b: Edition) -> bool:
    """Whether two editions name different SPM modules, years or sums: a name never joins
    them."""
    return any(x and y and not x & y for x, y in zip(a, b, strict=True))


# However long the history, a term more than this many titles share is a topic or a series,
# not a name (and comparing every pair of its titles would cost the square of their number).
MAX_RARE = 30


class NameModel:
    """The titles of a history as rarity-weighted terms (idf over the history)."""

    def __init__(self, titles: Sequence[str], dates: Sequence[str | None] | None = None) -> None:
        spelled = acronyms(titles)
        self.bags = [terms(phrases(t, spelled)) for t in titles]
        heads = [_HEAD.match(subject(t)) for t in titles]
        self.heads = [terms(phrases(h.group(1), spelled)) if h else set() for h in heads]
        # How many days of publishing a term appears on: a consultation's twenty return
        # templates, published one morning, are one use of its name, not twenty.
        days: dict[str, set[object]] = defaultdict(set)
        for index, bag in enumerate(self.bags):
            day = (dates[index] or index) if dates else index
            for t in bag:
                days[t].add(day)
        self.df = Counter({t: len(held) for t, held in days.items()})
        n = len(titles)
        self.idf = {t: math.log((n + 1) / (c + 0.5)) for t, c in self.df.items()}
        self.norms = [math.sqrt(sum(self.idf[t] ** 2 for t in bag)) or 1.0 for bag in self.bags]
        # A term at most this many titles share (1%, at most MAX_RARE) can be a name.
        self.rare = min(max(3, n // 100), MAX_RARE)

    def neighbours(self) -> list[set[int]]:
        """Per title, the titles it shares a rare term with."""
        holding: dict[str, list[int]] = defaultdict(list)
        for index, bag in enumerate(self.bags):
            for t in bag:
                if self.df[t] <= self.rare:
                    holding[t].append(index)
        found: list[set[int]] = [set() for _ in self.bags]
        for held in holding.values():
            for a in held:
                found[a].update(held)
        for index, near in enumerate(found):
            near.discard(index)
        return found

    def similarity(self, a: int, b: int, symmetric: bool = False) -> tuple[float, str]:
        """What two titles share, by weight, and their rarest shared term; 0 unless they share
        a rare term (a name, not only common words). A title headed by a rare name of two words
        or more ("Cryptoassets standard: ...") is one with a title holding its whole head.
        Otherwise, symmetric: the cosine, for two titles of one kind (two consultations must be
        alike as wholes); or how much of the shorter title the longer holds (a press release
        wraps the name a circular is titled with)."""
        for head, other in ((self.heads[a], self.bags[b]), (self.heads[b], self.bags[a])):
            names = [t for t in head if " " in t and self.df[t] <= self.rare]
            if names and head <= other:  # the whole head, a name of two words or more in it
                return 1.0, max(names, key=lambda t: (self.idf[t], t))
        shared = self.bags[a] & self.bags[b]
        rare = [t for t in shared if self.df[t] <= self.rare]
        if not rare:
            return 0.0, ""
        mass = sum(self.idf[t] ** 2 for t in shared)
        if symmetric:
            score = mass / (self.norms[a] * self.norms[b])
        else:
            score = mass / min(self.norms[a] ** 2, self.norms[b] ** 2)
        return score, max(rare, key=lambda t: (self.idf[t], t))


# A title published word for word on this many days or more is a series (monthly statistics,
# tender results, scam alerts), not one initiative; dates in it do not count as words
# ("Residential Mortgage Survey Results for June 2026" and for May).
SERIES_DAYS = 3
_MONTH = (
    "(?:January|February|March|April|May|June|July|August|September|October|November|December)"
    "\\b|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\\b\\.?"
)
# A date as titles write it ("20 February 2026", "end-June 2026", "March 2025"), or a year.
_TITLE_DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s+)?(?:{_MONTH})(?:\s+\d{{1,2}}\b)?,?(?:\s+(?:19|20)\d{{2}}\b)?"
    r"|\b(?:19|20)\d{2}\b"
)


def series_title(title: str) -> str:
    """What a title says apart from its dates: the same for each issue of a series."""
    return " ".join(_TITLE_DATE.sub("<date>", subject(title)).lower().split())


def periodic(publications: Sequence[Publication]) -> set[int]:
    """The publications of series: their titles' subjects, word for word, were published on
    SERIES_DAYS days or more. A name joins none of them to anything (however rare the words
    look in a short history); a key still does."""
    days: dict[str, set[str]] = defaultdict(set)
    for p in publications:
        days[series_title(p.title)].add(p.date or p.id)
    return {
        index
        for index, p in enumerate(publications)
        if len(days[series_title(p.title)]) >= SERIES_DAYS
    }


def group(publications: Sequence[Publication]) -> Grouping:
    """Every publication in exactly one record: publications that share an identifying key, or
    whose titles share a name strongly enough within the window, are in one record (and so,
    through them, are the publications each is joined to). Weaker name matches between
    records are kept as related."""
    parent = list(range(len(publications)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    joins: list[Join] = []

    def join(a: int, b: int, evidence: str, strength: float) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            joins.append(Join(publications[a].id, publications[b].id, evidence, strength))

    holders: dict[str, list[int]] = defaultdict(list)
    for index, p in enumerate(publications):
        for key in sorted(p.keys | title_keys(p.title)):
            holders[key].append(index)
    for key, held in sorted(holders.items()):
        if key.startswith(JOINING_KEYS):
            evidence = (
                "its text names the other's title" if key.startswith("doc:") else f"same {key}"
            )
            for other in held[1:]:
                join(held[0], other, evidence, 1.0)

    names = NameModel([p.title for p in publications], [p.date for p in publications])

    alike: dict[tuple[int, int], float] = {}  # titles that share no rare term are not alike
    candidates: list[tuple[float, int, int, str]] = []
    weaker: list[tuple[int, int, str, float]] = []
    editions = [edition(p) for p in publications]
    series = periodic(publications)
    for a, near in enumerate(names.neighbours()):
        if a in series:
            continue
        for b in sorted(n for n in near if n > a and n not in series):
            pa, pb = publications[a], publications[b]
            if _editions_differ(editions[a], editions[b]):
                continue
            score, name = names.similarity(a, b, symmetric=bool(pa.kind) and pa.kind == pb.kind)
            alike[a, b] = score
            apart = _days(pa.date, pb.date)
            # A press release announcing a circular, consultation or guideline the same day
            # wraps its name in other words: a weaker match joins them.
            announced = (
                apart is not None
                and apart <= ANNOUNCED_WITHIN_DAYS
                and pa.kind != pb.kind
                and not any(kind.startswith("speech") for kind in (pa.kind, pb.kind))
            )
            needed = ANNOUNCED_SIMILARITY if announced else JOIN_SIMILARITY
            if score >= needed and (apart is None or apart <= NAME_WINDOW_DAYS):
                candidates.append((score, a, b, name))
            elif score >= RELATED_SIMILARITY:
                weaker.append((a, b, f'shared name "{name}"', round(min(score, 1.0), 2)))
    record: dict[int, list[int]] = defaultdict(list)  # root -> its publications
    for index in range(len(publications)):
        record[root(index)].append(index)
    # Strongest names first; two records of several publications merge only if they are alike
    # as wholes, not through one pair (a short generic title inside a long list title).
    for score, a, b, name in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        evidence, strength = f'shared name "{name}"', round(min(score, 1.0), 2)
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        if len(record[ra]) > 1 and len(record[rb]) > 1:
            pairs = [
                (min(x, y), max(x, y))
                for x in record[ra][-LINKAGE_SAMPLE:]
                for y in record[rb][-LINKAGE_SAMPLE:]
            ]
            if sum(alike.get(pair, 0.0) for pair in pairs) / len(pairs) < RELATED_SIMILARITY:
                weaker.append((a, b, evidence, strength))
                continue
        join(a, b, evidence, strength)
        keep, gone = sorted((ra, rb))
        record[keep] += record.pop(gone)

    members: dict[int, list[int]] = defaultdict(list)  # oldest first, records too
    for index in sorted(range(len(publications)), key=lambda i: (publications[i].date or "", i)):
        members[root(index)].append(index)
    records = [[publications[i].id for i in m] for m in members.values()]
    related = [
        Join(publications[a].id, publications[b].id, evidence, strength)
        for a, b, evidence, strength in weaker
        if root(a) != root(b)
    ]
    return Grouping(records, joins, related)


# From stored documents to records ---------------------------------------------------------

# The listing details (`extra`) that publication_of and kind_of read: the only ones regrouping
# loads of each document (`record_inputs`). One they start to read goes here too.
LINKER_EXTRA = ("feed", "doc_type", "doc_id", "document_url")


def publication_of(document: dict[str, Any]) -> str:
    """What was published, whichever listing carried it: a BRDR document (its RSS item, its
    register record and a topic-page row linking it are one publication), else its link."""
    for url in (document["url"], str(document["extra"].get("document_url") or "")):
        if (found := url_publication(url)).startswith("brdr:"):
            return found
    if doc_id := document["extra"].get("doc_id"):
        return f"brdr:{base_id(str(doc_id))}"
    return str(document["url"] or document["id"])


def kind_of(document: dict[str, Any]) -> str:
    """A publication's kind in the words of a record's timeline."""
    extra, title = document["extra"], str(document["title"]).lower()
    feed, doc_type = extra.get("feed", ""), extra.get("doc_type", "")
    if document["source"] == "press_releases" or feed == "press-release":
        return "press release"
    if feed == "speeches":
        return "speech"
    if doc_type == "CPR" or feed == "consultations" or "consultation" in title:
        return "consultation"
    if doc_type == "SPM":
        return "SPM module"
    if doc_type in ("GLI", "IGL") or feed == "guidelines":
        return "guideline"
    if doc_type == "COP" or feed == "codes":
        return "code of practice"
    return "circular"


SUMMARY_WORDS = 60
_SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z(])")


def summary(title: str, text: str | None) -> str:
    """A few lines saying what a publication says, taken from the document itself: its
    subject heading and first sentences, about SUMMARY_WORDS words, cut at a sentence where
    one ends in time; the title's subject where there is no text. Never composed."""
    if not text:
        return subject(title)
    body = from_subject(text) or text
    words: list[str] = []
    for sentence in _SENTENCE_END.split(" ".join(body.split())):
        if words and len(words) + len(sentence.split()) > SUMMARY_WORDS:
            break
        words += sentence.split()
    if len(words) > SUMMARY_WORDS:
        words = [*words[:SUMMARY_WORDS], "…"]
    return " ".join(words)


def earlier_publications(
    document: dict[str, Any], versions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The publications a register document was before its current one (`versions`: each
    register id it had, oldest first): an earlier version of an SPM module is an update."""
    current = publication_of(document)
    earlier = []
    for version in versions:
        key = f"brdr:{base_id(str(version['doc_id']))}"
        if key != current:
            earlier.append({**version, "publication": key})
    return earlier


def records_of(
    documents: list[dict[str, Any]],
    corrections: list[dict[str, Any]],
    versions: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[int, int, str, float]]]:
    """Records for `documents` (rows of `storage.rule_records.record_inputs`), with the
    officers' `corrections` applied in order: a join puts a document's publication in the
    record of the target document's, a split gives it a record of its own, a retitle names
    the record. Each record: title, started_by, first_date, last_date, updates, members."""
    by_publication: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in sorted(documents, key=lambda d: (d["date"] or "", d["id"])):
        by_publication[publication_of(document)].append(document)
    publications = [
        Publication(
            key,
            docs[0]["title"],
            docs[0]["date"],
            kind_of(docs[0]),
            frozenset(k for d in docs for k in d["keys"]),
        )
        for key, docs in by_publication.items()
    ]
    grouping = group(publications)
    group_of = {pid: n for n, record in enumerate(grouping.records) for pid in record}
    why = {j.b: (j.evidence, j.strength) for j in grouping.joins}
    titles: dict[int, str] = {}
    publication_of_document = {d["id"]: p for p, docs in by_publication.items() for d in docs}
    for correction in corrections:
        mine = publication_of_document.get(correction["document_id"])
        if mine is None:
            continue
        if correction["action"] == "join":
            target = publication_of_document.get(str(correction["target"]))
            if target is not None:
                group_of[mine] = group_of[target]
                why[mine] = (f"joined by {correction['by']}", 1.0)
        elif correction["action"] == "split":
            group_of[mine] = max(group_of.values()) + 1
            why[mine] = (f"started the record (set by {correction['by']})", 1.0)
        elif correction["action"] == "retitle":
            titles[group_of[mine]] = str(correction["target"])
    members: dict[int, list[str]] = defaultdict(list)
    dated = sorted(publications, key=lambda p: (p.date or "", p.id))
    for p in dated:
        members[group_of[p.id]].append(p.id)
    order = sorted(members, key=lambda g: (by_publication[members[g][0]][0]["date"] or "", g))
    index_of = {g: n for n, g in enumerate(order)}
    records = []
    for g in order:
        pubs = members[g]
        first = by_publication[pubs[0]][0]
        earlier = [
            e
            for pid in pubs
            for d in by_publication[pid]
            for e in earlier_publications(d, (versions or {}).get(d["id"], []))
        ]
        dates = [by_publication[p][0]["date"] or "" for p in pubs] + [
            e["date"] or "" for e in earlier
        ]
        rows = []
        for n, pid in enumerate(pubs):
            evidence, strength = why.get(pid, ("", 0.0))
            if n == 0 and not evidence.startswith("started the record"):
                evidence, strength = "started the record", 1.0
            if n > 0 and not evidence:
                evidence = "joined through another publication of the record"
            rows += [
                {
                    "document_id": d["id"],
                    "publication": pid,
                    "evidence": evidence,
                    "strength": strength,
                }
                for d in by_publication[pid]
            ]
        records.append(
            {
                "title": titles.get(g) or subject(first["title"]),
                "started_by": first["id"],
                "first_date": min(d for d in dates if d) if any(dates) else None,
                "last_date": max(dates) or None,
                "updates": len(pubs) + len({e["publication"] for e in earlier}),
                "members": rows,
            }
        )
    related = {
        (min(a, b), max(a, b)): (r.evidence, r.strength)
        for r in grouping.related
        if (a := index_of[group_of[r.a]]) != (b := index_of[group_of[r.b]])
    }
    return records, [(a, b, e, s) for (a, b), (e, s) in sorted(related.items())]


def update_records(db: sqlite_utils.Database) -> int:
    """Group the whole history into records again (corrections applied) and store them,
    record ids kept where their documents were. How many records. Call in a transaction."""
    documents = record_inputs(db, LINKER_EXTRA)
    records, related = records_of(documents, record_corrections(db), register_versions(db))
    save_records(db, records, related)
    return len(records)


_INSTRUMENTS = ("circular", "SPM module", "guideline", "code of practice")


def record_view(db: sqlite_utils.Database, record_id: int) -> dict[str, Any] | None:
    """A record as people read it: its fields, and its updates (one per publication, newest
    first, each with its kind, sources and a summary taken from the document)."""
    row = record_row(db, record_id)
    if row is None:
        return None
    documents = record_documents(db, record_id)
    for d in documents:
        d["extra"] = json.loads(d["extra"] or "{}")
        d["document_content"] = json.loads(d["document_content"] or "null") or {}
    by_publication: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in documents:
        by_publication[d["publication"]].append(d)
    updates = []
    for publication, docs in by_publication.items():
        read = next((d for d in docs if d["text"]), docs[0])
        updates.append(
            {
                "publication": publication,
                "date": min((d["date"] for d in docs if d["date"]), default=None),
                "kind": kind_of(docs[0]),
                "title": docs[0]["title"],
                "url": docs[0]["url"],
                "sources": sorted({d["source"] for d in docs}),
                "documents": [d["id"] for d in docs],
                "evidence": docs[0]["evidence"],
                "summary": summary(read["title"], read["text"]),
            }
        )
    versions = register_versions(db, [d["id"] for d in documents])
    for d in documents:
        for earlier in earlier_publications(d, versions.get(d["id"], [])):
            updates.append(
                {
                    "publication": earlier["publication"],
                    "date": earlier["date"],
                    "kind": kind_of(d),
                    "title": earlier["title"],
                    "url": earlier["url"],
                    "sources": [d["source"]],
                    "documents": [d["id"]],
                    "evidence": "an earlier version of the same register document",
                    "summary": subject(earlier["title"]),
                }
            )
    updates.sort(key=lambda u: (u["date"] or "", u["publication"]), reverse=True)

    def union(column: str) -> list[str]:
        return sorted({t for d in documents for t in json.loads(d[column] or "[]")})

    references: dict[tuple[str, str], dict[str, Any]] = {}  # the first document naming each
    for d in documents:
        named = [("reference", n) for n in d["document_content"].get("references", [])]
        if code := d["extra"].get("spm_code"):
            named.append(("SPM module", code))
        for kind, number in named:
            references.setdefault(
                (kind, number), {"kind": kind, "number": number, "date": d["date"]}
            )
    effective = sorted(
        e["date"] for d in documents for e in d["document_content"].get("effective_dates", [])
    )
    kinds = [u["kind"] for u in sorted(updates, key=lambda u: u["date"] or "")]
    consultations = [u for u in updates if u["kind"] == "consultation"]
    if kinds and kinds[-1] in ("consultation", "press release") and consultations:
        concluded = any("conclusion" in u["title"].lower() for u in consultations)
        rule_type = "consultation concluded" if concluded else "consultation"
    elif any(k in _INSTRUMENTS for k in kinds):
        rule_type = "final"
    else:
        rule_type = "information"
    substantive = [d["last_substantive"] for d in documents if d["last_substantive"]]
    return {
        "id": row["id"],
        "title": row["title"],
        # Joint publications (HKMA and SFC circulars, IA and HKMA findings) name both.
        "regulator": ", ".join(sorted({d["regulator"] for d in documents})),
        "rule_type": rule_type,
        "rule_date": row["first_date"],
        "effective_date": effective[-1] if effective else None,
        "last_update": row["last_date"],
        "last_substantive_change": max(substantive) if substantive else None,
        "functions": union("functions"),
        "products": union("products"),
        "entity_types": union("entity_types"),
        "references": list(references.values()),
        "related": related_records(db, record_id),
        "updates": updates,
    }


# Earlier updates a digest entry lists (the most recent of them).
EARLIER_SHOWN = 5


def record_context(db: sqlite_utils.Database, document_id: str) -> dict[str, Any]:
    """Which update of which record a document is, for its digest entry: record (id),
    record_title, record_update (its publication's place, oldest first), record_since (the
    record's first date) and record_earlier ("2024-04-26 consultation", newest first). Empty
    for a document that is the first update of its record (or in none yet)."""
    rows = record_publications(db, document_id)
    publications: dict[str, dict[str, Any]] = {}
    versions = register_versions(db, [r["id"] for r in rows])
    for row in rows:
        row = {**row, "extra": json.loads(row["extra"] or "{}")}
        publications.setdefault(row["publication"], row)
        for version in earlier_publications(row, versions.get(row["id"], [])):
            publications.setdefault(version["publication"], {**row, "date": version["date"]})
    order = sorted(publications, key=lambda p: (publications[p]["date"] or "", p))
    mine = next((r["publication"] for r in rows if r["id"] == document_id), None)
    if mine is None or order.index(mine) == 0:
        return {}
    place = order.index(mine)
    earlier = [publications[p] for p in order[:place]][::-1][:EARLIER_SHOWN]
    return {
        "record": rows[0]["record_id"],
        "record_title": rows[0]["record_title"],
        "record_update": place + 1,
        "record_since": publications[order[0]]["date"] or "",
        "record_earlier": tuple(f"{p['date'] or '?'} {kind_of(p)}" for p in earlier),
    }


# Titles a text must name whole to name a publication: shorter ones ("Licence Fees") are named
# in passing by too many texts.
TITLE_MIN_WORDS = 5
_TOKEN = re.compile(r"[a-z0-9]+")


class TitleIndex:
    """The titles of a history that a document's text can name: a subject of at least
    TITLE_MIN_WORDS words that at most two documents (one publication's listings) carry."""

    def __init__(self, titles: dict[str, tuple[str, str | None]]) -> None:
        """`titles`: document id -> (title, date)."""
        holders: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for document_id, (title, _) in titles.items():
            words = tuple(_TOKEN.findall(subject(title).lower()))
            if len(words) >= TITLE_MIN_WORDS:
                holders[words].append(document_id)
        self.dates = {document_id: date for document_id, (_, date) in titles.items()}
        self.starts: dict[tuple[str, ...], list[tuple[tuple[str, ...], list[str]]]] = {}
        for words, documents in holders.items():
            if len(documents) <= 2:
                self.starts.setdefault(words[:3], []).append((words, documents))

    def links(self, snapshot: Snapshot) -> list[Link]:
        """`doc:<id>` for each document whose title the snapshot's text names and that was not
        published after it (a text names what came before it: whenever the text is read, the
        same links); a document's own title is no link."""
        text = (snapshot.document or {}).get("text") or ""
        words = _TOKEN.findall(str(text).lower())
        own = tuple(_TOKEN.findall(subject(snapshot.title).lower()))
        found: dict[str, Link] = {}
        for start in range(len(words) - TITLE_MIN_WORDS + 1):
            for title, documents in self.starts.get(tuple(words[start : start + 3]), ()):
                if title == own or tuple(words[start : start + len(title)]) != title:
                    continue
                for document_id in documents:
                    published = self.dates.get(document_id)
                    if published and snapshot.date and published > snapshot.date:
                        continue
                    evidence = f"text names “{' '.join(title)[:100]}”"
                    found[document_id] = Link(f"doc:{document_id}", "names", evidence)
        return list(found.values())


def links_for(db: sqlite_utils.Database) -> LinksOf:
    """What a document links to: `tracker.rules.links_of`, and the documents its text names by
    title (titles read from `db` once)."""
    index = TitleIndex(document_titles(db))

    def links(snapshot: Snapshot) -> list[Link]:
        return links_of(snapshot) + index.links(snapshot)

    return links
