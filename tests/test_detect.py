"""Change detection and listing health as pure functions."""

import pytest

from tracker.config import HealthSettings
from tracker.detect import (
    ListingHistory,
    Snapshot,
    StoredDocument,
    changed_event,
    describe_change,
    judge_listing,
    plan_source,
)

HEALTH = HealthSettings()
PAGE = "https://www.hkma.gov.hk/eng/page/"
FEED = "https://www.hkma.gov.hk/eng/other-information/rss/rss_circulars.xml"


def item(key, title="Circular", listing=PAGE, date="2025-04-10", text="", **extra):
    return {
        "listing": listing,
        "key": key,
        "title": title,
        "url": f"https://www.hkma.gov.hk/{key}.pdf",
        "date": date,
        "text": text,
        "extra": extra,
    }


def stored_from(items, source="pages", status="active"):
    docs = {}
    for i in items:
        snap = Snapshot.from_item(i)
        doc_id = f"{source}:{i['key']}"
        docs[doc_id] = StoredDocument(doc_id, i["listing"], status, snap.content_hash(), snap)
    return docs


def result(items, listing=PAGE, ok=True, removals=True, reason=""):
    return {
        "finish_reason": "finished",
        "items": items,
        "outcomes": [
            {
                "listing": listing,
                "ok": ok,
                "reason": reason,
                "items": len(items),
                "removals_allowed": removals,
            }
        ],
    }


def seen(items):
    """A listing whose last healthy run, a full read, gave `items` items."""
    return ListingHistory(items, items)


def plan(items, stored, last=None, listing=PAGE, **kwargs):
    return plan_source(
        "pages",
        result(items, listing, **kwargs),
        [listing],
        stored,
        {listing: seen(last if last is not None else len(stored))},
        HEALTH,
    )


DAY1 = [item(f"doc{i}", f"Circular {i}") for i in range(10)]


def kinds(p):
    return sorted((e.kind, e.document_id, tuple(e.fields)) for e in p.events)


def test_unchanged_rerun_has_no_events():
    assert plan(DAY1, stored_from(DAY1)).events == []


def test_edits_are_one_changed_event_naming_the_fields():
    day2 = [*DAY1[:3], item("doc3", "Circular 3 (revised)", date="2025-05-01"), *DAY1[4:]]
    day2[5] = item("doc5", "Circular 5", attachments=[{"label": "Annex", "url": "a.pdf"}])
    assert kinds(plan(day2, stored_from(DAY1))) == [
        ("changed", "pages:doc3", ("date", "title")),
        ("changed", "pages:doc5", ("extra.attachments",)),
    ]


def test_new_and_removed_rows_of_a_healthy_page():
    day2 = [*DAY1[1:], item("doc10", "Circular 10")]
    p = plan(day2, stored_from(DAY1))
    assert kinds(p) == [("new", "pages:doc10", ()), ("removed", "pages:doc0", ())]
    assert p.healthy


def test_feeds_are_windows_so_dropped_items_are_not_removals():
    feed_items = [item(f"c{i}", listing=FEED) for i in range(10)]
    p = plan(feed_items[2:], stored_from(feed_items), listing=FEED, removals=False)
    assert p.events == []


def test_an_unhealthy_listing_changes_and_removes_nothing():
    day2 = [item("doc0", "Circular 0 edited")]
    p = plan(day2, stored_from(DAY1), ok=False, reason="HTTP 503")
    assert p.events == []
    assert not p.healthy
    assert p.reason == f"{PAGE}: HTTP 503"


def test_a_listing_missing_from_the_crawl_is_unhealthy():
    p = plan_source("pages", None, [PAGE], stored_from(DAY1), {PAGE: seen(10)}, HEALTH)
    assert (p.healthy, p.events) == (False, [])
    assert "no result: crawl process died" in p.reason


@pytest.mark.parametrize(
    ("items", "last", "healthy", "reason"),
    [
        (10, 10, True, ""),
        (6, 10, True, ""),
        (4, 10, False, "sharp drop: 4 items where the last healthy run had 10"),
        (0, 10, False, "0 items where the last healthy run had 10"),
        (0, 2, False, "0 items where the last healthy run had 2"),
        (1, 3, True, ""),  # too few to judge a drop
        (0, None, True, ""),  # never seen before: nothing to compare with
    ],
)
def test_judge_listing(items, last, healthy, reason):
    outcome = {"ok": True, "reason": "", "items": items}
    verdict = judge_listing("pages", PAGE, outcome, seen(last), HEALTH, "finished")
    assert (verdict.healthy, verdict.reason) == (healthy, reason)


def test_first_crawl_of_a_listing_is_a_baseline_later_new_items_are_not():
    first = plan_source("pages", result(DAY1), [PAGE], {}, {}, HEALTH)
    assert all(e.baseline for e in first.events) and len(first.events) == 10
    later = plan([*DAY1, item("doc10")], stored_from(DAY1))
    assert [e.baseline for e in later.events] == [False]


def test_a_removed_document_listed_again_is_new_again():
    stored = stored_from(DAY1[:1], status="removed") | stored_from(DAY1[1:])
    p = plan(DAY1, stored)
    assert [(e.kind, e.document_id, e.diff) for e in p.events] == [
        ("new", "pages:doc0", "listed again after its removal")
    ]


def test_duplicate_keys_in_one_crawl_count_once():
    p = plan([*DAY1, DAY1[0]], stored_from(DAY1))
    assert p.events == [] and len(p.seen) == 10


def test_describe_change_is_a_readable_sentence_diff():
    old = Snapshot("T", "u", None, "First sentence. Second sentence. Third.", {})
    new = Snapshot("T", "u", None, "First sentence. Second sentence, amended. Third.", {})
    assert describe_change(old, new, ["text"]).splitlines() == [
        "--- text (before)",
        "+++ text (now)",
        "@@ -1,3 +1,3 @@",
        " First sentence.",
        "-Second sentence.",
        "+Second sentence, amended.",
        " Third.",
    ]


@pytest.mark.parametrize(
    ("before", "after", "significance", "reason"),
    [
        (
            {"title": "Bogus  telephone calls"},
            {"title": "Bogus Telephone Calls."},
            "cosmetic",
            "only case",
        ),
        (
            {"url": "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN"},
            {"url": "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20250428-3-EN"},
            "cosmetic",
            "only case",
        ),
        (
            {"title": "Generative A.I. Sandbox (“Sandbox”)"},
            {"title": "Generative AI Sandbox"},
            "substantive",
            "title: wording changed",
        ),
        ({"date": "2025-04-10"}, {"date": "2025-04-11"}, "substantive", "date changed"),
        (
            {"url": "https://www.hkma.gov.hk/a.pdf"},
            {"url": "https://www.hkma.gov.hk/b.pdf"},
            "substantive",
            "url points elsewhere",
        ),
        (
            {"document": {"text": "Takes effect on 1 March 2026."}},
            {"document": {"text": "Takes effect on 1 March 2026 ."}},
            "cosmetic",
            "only case",
        ),
    ],
    ids=[
        "spacing-case-punctuation",
        "equivalent-brdr-link",
        "reworded-title",
        "date",
        "moved-link",
        "pdf-reflow",
    ],
)
def test_changes_are_classified_substantive_or_cosmetic(before, after, significance, reason):
    base = {
        "title": "T",
        "url": "https://www.hkma.gov.hk/x",
        "date": "2025-01-01",
        "text": "",
        "extra": {},
        "document": None,
    }
    old, new = Snapshot(**{**base, **before}), Snapshot(**{**base, **after})
    event = changed_event("pages:x", old, new)
    assert event.significance == significance
    assert event.significance_reason.startswith(reason)


def test_a_listing_that_lost_its_dates_is_unhealthy():
    undated = [item(f"doc{i}", date=None) for i in range(8)] + [item("doc8"), item("doc9")]
    p = plan(undated, stored_from(DAY1))
    assert not p.healthy and p.reason.endswith("field coverage: 8 of 10 items have no date")
    assert p.events == []


def test_a_crawl_that_ended_early_is_unhealthy():
    r = {**result(DAY1), "finish_reason": "closespider_errorcount"}
    p = plan_source("pages", r, [PAGE], stored_from(DAY1), {PAGE: seen(10)}, HEALTH)
    assert not p.healthy and p.reason.endswith("crawl ended early (closespider_errorcount)")
