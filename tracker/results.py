"""What a crawl process hands back: `<output>/<spider>.json`, read and checked at the boundary.

The child writes items (dataclasses as JSON), one outcome per listing and the crawl stats
(spiders/crawl.py). A file that does not have that shape is not trusted in part: the whole
result counts as a failed crawl, with a reason naming what was wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict


class Outcome(TypedDict):
    """spiders.items.ListingOutcome, as the crawl process wrote it."""

    source: str
    listing: str
    ok: bool
    reason: str
    status: int | None
    items: int
    removals_allowed: bool
    comparable: bool


class CrawlResult(TypedDict, total=False):
    finish_reason: str | None
    items: list[dict[str, Any]]  # DocumentItem (sources) or a helper's item (documents, lookups)
    outcomes: list[Outcome]
    stats: dict[str, Any]


class ResultError(ValueError):
    """A result file without the expected shape; the message says where."""


_OUTCOME_TYPES: dict[str, type | tuple[type, ...]] = {
    "source": str,
    "listing": str,
    "ok": bool,
    "reason": str,
    "status": (int, type(None)),
    "items": int,
    "removals_allowed": bool,
    "comparable": bool,
}
# What every item of a source's listing carries (spiders.items.DocumentItem).
_ITEM_TYPES: dict[str, type | tuple[type, ...]] = {
    "listing": str,
    "key": str,
    "title": str,
    "url": str,
    "date": (str, type(None)),
    "text": str,
    "extra": dict,
}


def _check(record: Any, types: dict[str, type | tuple[type, ...]], where: str) -> None:
    if not isinstance(record, dict):
        raise ResultError(f"{where} is not an object")
    for key, expected in types.items():
        if key not in record:
            raise ResultError(f"{where} has no {key!r}")
        if not isinstance(record[key], expected):
            raise ResultError(f"{where}: {key!r} is {type(record[key]).__name__}")


def read_result(path: Path, documents: bool) -> CrawlResult:
    """The checked result of one spider; `documents`: its items are listing documents."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ResultError(f"{path.name}: {error}") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path.name} is not an object")
    for key, expected in (("items", list), ("outcomes", list), ("stats", dict)):
        if not isinstance(data.get(key), expected):
            raise ResultError(f"{path.name}: {key!r} is missing or not a {expected.__name__}")
    if not isinstance(data.get("finish_reason"), str | None):
        raise ResultError(f"{path.name}: 'finish_reason' is not text")
    for n, outcome in enumerate(data["outcomes"]):
        _check(outcome, _OUTCOME_TYPES, f"{path.name}: outcome {n}")
    for n, item in enumerate(data["items"]):
        _check(item, _ITEM_TYPES if documents else {}, f"{path.name}: item {n}")
    result: CrawlResult = {
        "finish_reason": data["finish_reason"],
        "items": data["items"],
        "outcomes": data["outcomes"],
        "stats": data["stats"],
    }
    return result
