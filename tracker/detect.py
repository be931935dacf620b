"""Change detection and listing health: pure functions from stored state and a crawl to a plan."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.records import (
    ChangeEvent,
    ListingVerdict,
    Snapshot,
    SourcePlan,
    StoredDocument,
    StoredDocuments,
)
from tracker.results import CrawlResult
from tracker.sources import SOURCES

if TYPE_CHECKING:
    from tracker.config import HealthSettings


@dataclass(frozen=True)
class ListingHistory:
    """What the store knows of a listing's earlier runs."""

    healthy_items: int | None = None  # items of its last healthy run; None: never healthy
    full_items: int | None = None  # items of its last healthy full read; None: never read whole
    # Set for a listing's first full read after incremental ones: an item first seen now and
    # dated before this was outside every earlier read's window. It is history, not news.
    baseline_before: str | None = None


def changed_fields(old: Snapshot, new: Snapshot) -> list[str]:
    before, after = old.fields(), new.fields()
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


_SENTENCE_END = re.compile(r"(?<=[.!?;:。；])\s+")


def _lines(name: str, value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if name in ("text", "document.text"):  # long text is one line: compare sentence by sentence
        return _SENTENCE_END.split(value)
    if isinstance(value, str):
        return [value]
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1).splitlines()


def describe_change(old: Snapshot, new: Snapshot, fields: list[str]) -> str:
    """A readable diff: one unified diff per changed field, long text split into sentences."""
    before, after = old.fields(), new.fields()
    parts: list[str] = []
    for name in fields:
        parts.extend(
            difflib.unified_diff(
                _lines(name, before.get(name)),
                _lines(name, after.get(name)),
                f"{name} (before)",
                f"{name} (now)",
                n=1,
                lineterm="",
            )
        )
    return "\n".join(parts)


# Fields whose every change matters, however small.
SUBSTANTIVE_FIELDS = (
    "date",
    "extra.version",
    "extra.status",
    "extra.supersession_date",
    "document.effective_dates",
    "document.addressees",
    "document.references",
)
_BRDR_PAGE_FORM = re.compile(r"/doc-ldg/(?:current|docId)/", re.IGNORECASE)


def _gist(value: Any) -> str:
    """A value without case, whitespace, punctuation or formatting: what the words say."""
    text = (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    )
    return re.sub(r"[\W_]+", "", text.casefold())


def _equivalent_url(url: str) -> str:
    url = _BRDR_PAGE_FORM.sub("/doc-ldg/", url.casefold())
    return url.replace("http://", "https://").rstrip("/")


def classify_change(old: Snapshot, new: Snapshot, fields: list[str]) -> tuple[str, str]:
    """("substantive" | "cosmetic", why). Cosmetic: only case, whitespace, punctuation or
    formatting moved, or a link moved to an equivalent URL."""
    before, after = old.fields(), new.fields()
    for name in fields:
        if name in SUBSTANTIVE_FIELDS:
            return "substantive", f"{name} changed"
        if name == "url" or name.endswith("_url"):
            if _equivalent_url(str(before.get(name))) != _equivalent_url(str(after.get(name))):
                return "substantive", f"{name} points elsewhere"
        elif _gist(before.get(name)) != _gist(after.get(name)):
            return "substantive", f"{name}: wording changed"
    return "cosmetic", "only case, whitespace, punctuation, formatting or equivalent links moved"


# Fields whose change is shown word by word; any other field as its old and new value.
WORDING_FIELDS = ("title", "text", "document.text")
CONTEXT_WORDS = 6  # words of unchanged context kept around a changed passage
MAX_PASSAGES = 3  # changed passages kept per field


def _word_diff(old: str, new: str) -> list[list[str]]:
    """[op, words] segments turning `old` into `new`, long unchanged runs cut to context."""
    a, b = old.split(), new.split()
    segments: list[list[str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            words = a[i1:i2]
            if len(words) > 2 * CONTEXT_WORDS:
                first = not segments
                words = (
                    ["…", *words[-CONTEXT_WORDS:]]
                    if first
                    else [*words[:CONTEXT_WORDS], "…", *words[-CONTEXT_WORDS:]]
                )
            segments.append(["=", " ".join(words)])
        if op in ("delete", "replace"):
            segments.append(["-", " ".join(a[i1:i2])])
        if op in ("insert", "replace"):
            segments.append(["+", " ".join(b[j1:j2])])
    if segments and segments[-1][0] == "=":
        tail = segments[-1][1].split()
        if len(tail) > CONTEXT_WORDS:
            segments[-1] = ["=", " ".join([*tail[:CONTEXT_WORDS], "…"])]
    return segments


def word_passages(name: str, old: Any, new: Any) -> list[list[list[str]]]:
    """The changed passages of a wording field: its sentences are matched, and each run of
    changed sentences is compared word by word."""
    before, after = _lines(name, old), _lines(name, new)
    passages = [
        _word_diff(" ".join(before[i1:i2]), " ".join(after[j1:j2]))
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(
            None, before, after, autojunk=False
        ).get_opcodes()
        if op != "equal"
    ]
    return passages[:MAX_PASSAGES]


def structured_change(old: Snapshot, new: Snapshot, fields: list[str]) -> list[dict[str, Any]]:
    """Each changed field as data: old and new value, or for wording its word-level passages."""
    before, after = old.fields(), new.fields()
    changed: list[dict[str, Any]] = []
    for name in sorted(fields, key=lambda f: f != "title"):  # the title first, as read
        if name in WORDING_FIELDS:
            words = word_passages(name, before.get(name), after.get(name))
            changed.append({"field": name, "words": words})
        else:
            changed.append({"field": name, "old": before.get(name), "new": after.get(name)})
    return changed


def changed_event(doc_id: str, old: Snapshot, new: Snapshot) -> ChangeEvent:
    """A 'changed' event naming the fields, with what changed in each, a readable diff and its
    significance."""
    fields = changed_fields(old, new)
    significance, why = classify_change(old, new, fields)
    return ChangeEvent(
        doc_id,
        "changed",
        new,
        fields,
        describe_change(old, new, fields),
        significance=significance,
        significance_reason=why,
        changed=structured_change(old, new, fields),
    )


def judge_listing(
    source: str,
    url: str,
    outcome: dict[str, Any] | None,
    history: ListingHistory,
    health: HealthSettings,
    finish_reason: str | None,
    undated: int = 0,
) -> ListingVerdict:
    """Whether a listing's result can be trusted: fetched, parsed, complete, dated, and, when
    read whole, not suspiciously short compared with its last healthy full read."""
    complete = bool(outcome.get("comparable", True)) if outcome else False

    def verdict(healthy: bool, reason: str, items: int) -> ListingVerdict:
        return ListingVerdict(source, url, healthy, reason, items, complete)

    if outcome is None:
        why = f"crawl ended ({finish_reason})" if finish_reason else "crawl process died"
        return verdict(False, f"no result: {why}", 0)
    items = int(outcome["items"])
    if not outcome["ok"]:
        return verdict(False, outcome["reason"] or "failed", items)
    if finish_reason not in (None, "finished"):
        return verdict(False, f"crawl ended early ({finish_reason})", items)
    if items >= health.min_items_for_drop_check and undated / items > health.max_undated_share:
        return verdict(False, f"field coverage: {undated} of {items} items have no date", items)
    # An incremental read is a slice of varying size: only whole reads are compared.
    previous = history.full_items if complete else None
    if previous:
        if items == 0:
            return verdict(False, f"0 items where the last healthy run had {previous}", items)
        drop = 1 - items / previous
        if previous >= health.min_items_for_drop_check and drop > health.max_drop_ratio:
            reason = f"sharp drop: {items} items where the last healthy run had {previous}"
            return verdict(False, reason, items)
    return verdict(True, "", items)


def plan_source(
    source: str,
    result: CrawlResult | None,
    expected_listings: list[str],
    stored: Mapping[str, StoredDocument],
    history: dict[str, ListingHistory],
    health: HealthSettings,
) -> SourcePlan:
    """Compare one source's crawl `result` with its `stored` documents.

    Items of unhealthy listings are ignored entirely: a broken page neither changes nor removes
    anything. Removals come only from healthy listings that allow them (not RSS windows).
    What a listing shows on its first healthy run is the baseline (recorded, not news).
    """
    result = result or {}
    outcomes: dict[str, Any] = {o["listing"]: o for o in result.get("outcomes", [])}
    undated: dict[str, int] = {}
    for item in result.get("items", []):
        if not item["date"]:
            undated[item["listing"]] = undated.get(item["listing"], 0) + 1
    verdicts = [
        judge_listing(
            source,
            url,
            outcomes.get(url),
            history.get(url, ListingHistory()),
            health,
            result.get("finish_reason"),
            undated.get(url, 0),
        )
        for url in expected_listings
    ]
    described = SOURCES.get(source)
    plan = SourcePlan(source, verdicts, regulator=described.regulator if described else "HKMA")
    healthy = {v.url for v in verdicts if v.healthy}
    known = {url: history.get(url, ListingHistory()) for url in healthy}

    def is_baseline(item: dict[str, Any]) -> bool:
        listing = known[item["listing"]]
        if listing.healthy_items is None:
            return True
        cutoff = listing.baseline_before
        return bool(cutoff and item["date"] and item["date"] < cutoff)

    docs = stored if isinstance(stored, StoredDocuments) else StoredDocuments(stored)
    docs.prefetch(f"{source}:{item['key']}" for item in result.get("items", []))
    for item in result.get("items", []):
        if item["listing"] not in healthy:
            continue
        doc_id = f"{source}:{item['key']}"
        if doc_id in plan.seen:
            continue
        old = docs.get(doc_id)
        said = Snapshot.from_item(item)
        if old is not None and old.status != "removed" and old.listing_hash == said.listing_hash():
            # The listing says what it said: nothing changed, and no text need be read.
            plan.seen[doc_id] = (item["listing"], said)
            plan.unchanged.add(doc_id)
            continue
        snapshot = Snapshot.from_item(item, old.snapshot.document if old else None)
        plan.seen[doc_id] = (item["listing"], snapshot)
        if old is None:
            plan.first_seen.add(doc_id)
        if old is None or old.status == "removed":
            diff = "listed again after its removal" if old else ""
            fields = changed_fields(old.snapshot, snapshot) if old else []
            baseline = old is None and is_baseline(item)
            plan.events.append(ChangeEvent(doc_id, "new", snapshot, fields, diff, baseline))
        elif old.content_hash != snapshot.content_hash():
            plan.events.append(changed_event(doc_id, old.snapshot, snapshot))
        else:  # only sign fields moved
            plan.refreshed.add(doc_id)

    removable = {
        o["listing"] for o in outcomes.values() if o["listing"] in healthy and o["removals_allowed"]
    }
    for doc in docs.active_in(removable) if removable else []:
        if doc.id not in plan.seen:
            plan.events.append(ChangeEvent(doc.id, "removed", doc.snapshot, [], ""))
    return plan
