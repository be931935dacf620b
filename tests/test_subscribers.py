"""Subscribers: config errors naming subscriber and key, filters, cadences in Hong Kong time;
digests that render hostile and Chinese titles harmlessly."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.policy import SMTP

import pytest

from alerts.digest import Digest
from alerts.subscribers import (
    Exclusion,
    Route,
    Subscriber,
    SubscriberError,
    parse_cadence,
    parse_subscribers,
)
from tracker.config import vocabularies
from tracker.tagging import load_taxonomy

KNOWN = vocabularies(load_taxonomy())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"emails": ["a@example.com"]}, "subscribers[0]: name is required"),
        (
            {"name": "aml", "emails": ["a@example.com"], "function": ["AML/CFT"]},
            "subscriber 'aml': unknown key 'function'",
        ),
        (
            {"name": "aml", "emails": ["not-an-address"]},
            "subscriber 'aml': emails: 'not-an-address' is not an email address",
        ),
        (
            {"name": "aml", "emails": ["a@example.com\r\nBcc: x@evil.com"]},
            "is not an email address",
        ),
        (
            {"name": "aml", "emails": ["a@example.com"], "functions": ["Anti-fraud stuff"]},
            "subscriber 'aml': functions: 'Anti-fraud stuff' is not one of the known names "
            "(AML/CFT, Capital,",
        ),
        (
            {"name": "aml", "emails": ["a@example.com"], "cadence": "hourly"},
            "subscriber 'aml': cadence: 'hourly' is not",
        ),
        (
            {"name": "aml", "emails": ["a@example.com"], "kinds": ["deleted"]},
            "kinds: 'deleted' is not one of the known names (changed, new, removed)",
        ),
        ({"name": "aml"}, "subscriber 'aml': give emails or a webhook"),
        ({"name": "aml", "webhook": "ftp://x"}, "webhook must be an http(s) URL"),
        (
            {"name": "aml", "emails": ["a@example.com"], "untagged": "drop"},
            'subscriber \'aml\': untagged must be "include" or "exclude"',
        ),
    ],
)
def test_bad_subscribers_name_the_subscriber_and_key(entry, message):
    with pytest.raises(SubscriberError) as error:
        parse_subscribers([entry], KNOWN)
    assert message in str(error.value)


def test_filters_take_names_and_aliases_in_any_case():
    (subscriber,) = parse_subscribers(
        [
            {
                "name": "aml",
                "emails": ["a@example.com"],
                "functions": ["aml", "AML/CFT", "Fraud"],
                "products": ["wealth"],
                "entity_types": ["Banks"],
                "sources": ["BRDR"],
                "kinds": ["New"],
            }
        ],
        KNOWN,
    )
    assert subscriber.functions == ("AML/CFT", "Fraud")
    assert subscriber.products == ("Wealth Mgt",)
    assert subscriber.entity_types == ("Banks (authorized institutions)",)
    assert (subscriber.sources, subscriber.kinds) == (("brdr",), ("new",))
    with pytest.raises(SubscriberError, match="sources: 'foo' is not one of the known names"):
        parse_subscribers([{"name": "x", "emails": ["a@example.com"], "sources": ["foo"]}], KNOWN)


def test_duplicate_names_are_refused():
    entry = {"name": "aml", "emails": ["a@example.com"]}
    with pytest.raises(SubscriberError, match="the name is used twice"):
        parse_subscribers([entry, entry], KNOWN)


CHANGE = {
    "id": 1,
    "kind": "new",
    "source": "pages",
    "title": "Guidance on money laundering",
    "diff": "",
    "baseline": False,
    "significance": "substantive",
    "functions": ["AML/CFT"],
    "products": ["Banking"],
    "entity_types": [],
}


@pytest.mark.parametrize(
    ("subscriber", "change", "matches"),
    [
        (Subscriber("s", functions=("AML/CFT",)), {}, True),
        (Subscriber("s", functions=("Fraud",)), {}, False),
        (Subscriber("s", functions=("Fraud", "AML/CFT"), products=("Banking",)), {}, True),
        (Subscriber("s", products=("Wealth Mgt",)), {}, False),
        (Subscriber("s", sources=("rss",)), {}, False),
        (Subscriber("s", kinds=("changed",)), {}, False),
        (Subscriber("s", keywords=("LAUNDERING",)), {}, True),
        (Subscriber("s"), {"significance": "cosmetic"}, False),
        (Subscriber("s", include_cosmetic=True), {"significance": "cosmetic"}, True),
        (Subscriber("s"), {"baseline": True}, False),
    ],
)
def test_filters(subscriber, change, matches):
    assert subscriber.matches({**CHANGE, **change}) is matches


# A circular no rule could tag (tests/labelled/second.toml: "Strengthening Security Controls
# for Internet Banking Services" got no function), and a speech no rule could tag.
UNTAGGED_CIRCULAR = {**CHANGE, "source": "rss", "functions": [], "binding": True}
UNTAGGED_SPEECH = {**UNTAGGED_CIRCULAR, "binding": False}
CYBER = Subscriber("cyber", functions=("Cybersecurity",))


@pytest.mark.parametrize(
    ("subscriber", "change", "route"),
    [
        (CYBER, UNTAGGED_CIRCULAR, Route("untagged", {}, ("functions",))),
        (
            Subscriber("s", functions=("Cybersecurity",), products=("Banking",)),
            UNTAGGED_CIRCULAR,
            Route("untagged", {"products": ["Banking"]}, ("functions",)),
        ),
        (
            CYBER,
            UNTAGGED_SPEECH,
            Exclusion("functions", ("Cybersecurity",), (), "has no tag of this kind"),
        ),
        (
            Subscriber("s", functions=("Cybersecurity",), untagged="exclude"),
            UNTAGGED_CIRCULAR,
            Exclusion("functions", ("Cybersecurity",), (), "has no tag of this kind"),
        ),
        # Tagged, only not with what the subscriber wants: the filter works as before.
        (
            CYBER,
            {**UNTAGGED_CIRCULAR, "functions": ["Credit"]},
            Exclusion("functions", ("Cybersecurity",), ("Credit",), "has none of them"),
        ),
        # Another filter still applies to an untagged one.
        (
            Subscriber("s", functions=("Cybersecurity",), sources=("brdr",)),
            UNTAGGED_CIRCULAR,
            Exclusion("sources", ("brdr",), ("rss",), "not one of them"),
        ),
        (
            Subscriber("s", functions=("Fraud", "AML/CFT")),
            CHANGE,
            Route("filters", {"functions": ["AML/CFT"]}),
        ),
        (Subscriber("s"), UNTAGGED_CIRCULAR, Route("everything", {})),
    ],
)
def test_routes_say_why_a_change_goes_or_not(subscriber, change, route):
    assert subscriber.route(change) == route


def test_a_filtered_subscriber_is_told_it_gets_untagged_instruments():
    assert CYBER.describe() == (
        "cyber (functions: Cybersecurity; and binding instruments the rules could not tag)"
    )
    exclude = Subscriber("cyber", functions=("Cybersecurity",), untagged="exclude")
    assert exclude.describe() == "cyber (functions: Cybersecurity)"


@pytest.mark.parametrize(
    ("cadence", "last", "now", "due"),
    [
        ("run", "2026-11-22T01:00:00+00:00", "2026-11-22T01:05:00+00:00", True),
        # daily 08:30 HKT = 00:30 UTC
        ("daily 08:30", "2026-11-21T00:31:00+00:00", "2026-11-22T00:29:00+00:00", False),
        ("daily 08:30", "2026-11-21T00:31:00+00:00", "2026-11-22T00:31:00+00:00", True),
        ("daily 08:30", "2026-11-22T00:31:00+00:00", "2026-11-22T09:00:00+00:00", False),
        ("daily 08:30", None, "2026-11-22T09:00:00+00:00", True),
        # weekly mon 09:00 HKT; 2026-11-23 is a Monday
        ("weekly mon 09:00", "2026-11-16T01:05:00+00:00", "2026-11-22T23:00:00+00:00", False),
        ("weekly mon 09:00", "2026-11-16T01:05:00+00:00", "2026-11-23T01:01:00+00:00", True),
    ],
)
def test_cadences_in_hong_kong_time(cadence, last, now, due):
    last_at = datetime.fromisoformat(last) if last else None
    assert parse_cadence(cadence).due(last_at, datetime.fromisoformat(now)) is due


def entry(title, url="https://www.hkma.gov.hk/a.pdf"):
    return {
        "id": 1,
        "kind": "new",
        "source": "rss",
        "title": title,
        "url": url,
        "date": "2026-07-29",
        "fields": [],
        "diff": "",
        "detected_at": "2026-11-22T03:00:00+00:00",
    }


def test_hostile_titles_are_harmless_in_every_part():
    hostile = 'Circular <img src=x onerror="alert(1)"> <a href="javascript:alert(2)">x</a>\r\nBcc: victim@example.com'
    digest = Digest.of_changes(
        datetime(2026, 11, 22, tzinfo=UTC), [entry(hostile, url="javascript:alert(3)")]
    )
    html = digest.render_html()
    assert "<img" not in html and 'onerror="' not in html and 'href="javascript' not in html
    raw = digest.to_email("t@example.com", ["a@example.com"]).as_bytes(policy=SMTP)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and "\n" not in parsed["Subject"]
    assert parsed["Subject"].startswith("HKMA tracker: new – Circular <img")


def test_chinese_title_in_subject_and_both_parts():
    digest = Digest.of_changes(
        datetime(2026, 11, 22, tzinfo=UTC), [entry("打擊洗錢及恐怖分子資金籌集指引（修訂）")]
    )
    raw = digest.to_email("t@example.com", ["a@example.com"]).as_bytes(policy=SMTP)
    assert b"Subject: HKMA tracker: new =?utf-8?" in raw  # RFC 2047 encoded word
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "HKMA tracker: new – 打擊洗錢及恐怖分子資金籌集指引（修訂）"
    assert "打擊洗錢及恐怖分子資金籌集指引（修訂）" in parsed.get_body(("plain",)).get_content()
    assert "打擊洗錢及恐怖分子資金籌集指引（修訂）" in parsed.get_body(("html",)).get_content()


def test_a_feed_added_under_a_name_of_ones_own_files_as_its_kind():
    import sqlite3

    from tracker.sources import binding, binding_sql, digest_group

    chinese = "https://www.hkma.gov.hk/chi/other-information/rss/rss_circulars.xml"
    extra = {"feed": "circulars-zh"}
    assert digest_group("rss", extra, chinese) == "instruments"
    assert binding("rss", extra, chinese)
    speeches = "https://www.hkma.gov.hk/chi/other-information/rss/rss_speeches.xml"
    assert digest_group("rss", {"feed": "speeches-zh"}, speeches) == "news"
    with sqlite3.connect(":memory:") as conn:  # the SQL says the same as the function
        conn.execute("CREATE TABLE documents (source, extra, listing)")
        conn.executemany(
            "INSERT INTO documents VALUES ('rss', ?, ?)",
            [('{"feed": "circulars-zh"}', chinese), ('{"feed": "speeches-zh"}', speeches)],
        )
        found = conn.execute(f"SELECT listing FROM documents d WHERE {binding_sql()}").fetchall()
    assert found == [(chinese,)]


def test_a_subscriber_can_follow_one_regulator():
    """Issue 25: `regulators = ["SFC"]` in a subscriber's table; a change carries its
    regulator (one stored before other regulators were tracked is the HKMA's)."""
    (sfc,) = parse_subscribers(
        [{"name": "securities", "emails": ["a@example.com"], "regulators": ["sfc"]}], KNOWN
    )
    assert sfc.regulators == ("SFC",)
    assert sfc.route({**CHANGE, "regulator": "SFC"}) == Route("filters", {"regulators": ["SFC"]})
    assert sfc.route({**CHANGE, "regulator": "HKMA"}) == Exclusion(
        "regulators", ("SFC",), ("HKMA",), "not one of them"
    )
    assert not sfc.matches(CHANGE)  # no regulator given: the HKMA's
    assert "regulators: SFC" in sfc.describe()
    # An untagged SFC circular reaches an SFC subscriber filtered on functions: the regulator
    # chooses whose instruments, the untagged rule still keeps them.
    sfc_cyber = Subscriber("s", functions=("Cybersecurity",), regulators=("SFC",))
    assert sfc_cyber.route({**UNTAGGED_CIRCULAR, "regulator": "SFC"}) == Route(
        "untagged", {"regulators": ["SFC"]}, ("functions",)
    )
    with pytest.raises(SubscriberError, match=r"regulators: 'FSB' is not one of the known names"):
        parse_subscribers(
            [{"name": "x", "emails": ["a@example.com"], "regulators": ["FSB"]}], KNOWN
        )
