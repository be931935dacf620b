"""Digest rendering: grouped, escaped, a proper multipart email; the file channel."""

import dataclasses
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from alerts.digest import Digest, DigestEntry
from storage.records import Snapshot
from tracker.detect import changed_fields, structured_change
from tracker.sources import DIGEST_GROUPS, digest_group, listed_in, source_titles

HOSTILE = 'Circular <script>alert("x")</script> & "quotes"'


def snapshot(title="T", date=None, document=None):
    return Snapshot(title, "https://www.hkma.gov.hk/x", date, "", {}, document)


def changed(old, new):
    """The fields and structured changes the tracker records between two snapshots."""
    fields = changed_fields(old, new)
    return fields, tuple(structured_change(old, new, fields))


def entry(change_id, kind, source, title, url="https://www.hkma.gov.hk/a.pdf", change=((), ())):
    fields, what = change
    return DigestEntry(
        change_id,
        kind,
        source,
        title,
        url,
        "2026-07-29",
        list(fields),
        what,
        "2026-11-22T03:00:00+00:00",
    )


DIGEST = Digest(
    datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
    [
        entry(1, "new", "rss", "Joint Circular on the Cross-Sectoral Cyber Mapping Exercise"),
        entry(
            2,
            "changed",
            "pages",
            HOSTILE,
            url='javascript:alert("x")',
            change=changed(snapshot("old words"), snapshot("new words")),
        ),
        entry(3, "removed", "pages", "Guidance Paper on Tax Evasion"),
        entry(4, "new", "rss", "香港金融管理局 通告"),
    ],
    source_titles=source_titles(),
)


def test_subject_counts_kinds():
    assert DIGEST.subject == "HKMA tracker: 4 changes (2 new, 1 changed, 1 removed)"


def test_groups_by_source_then_kind_newest_first():
    assert [(name, [e.change_id for e in entries]) for name, entries in DIGEST.groups()] == [
        ("HKMA topic pages", [2, 3]),
        ("HKMA RSS feeds", [4, 1]),
    ]


def test_html_escapes_titles_and_refuses_script_links():
    html = DIGEST.render_html()
    assert "<script>" not in html
    assert "Circular &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34;" in html
    assert 'href="#"' in html and 'href="javascript' not in html
    assert "<style" not in html  # inline styles only: mail clients strip <style>


def test_text_keeps_titles_verbatim_with_the_diff():
    text = DIGEST.render_text()
    assert HOSTILE in text
    assert "  Changed: Title\n    [-old-] {+new+} words" in text


def test_email_is_multipart_alternative_with_utf8_parts():
    message = message_from_bytes(
        DIGEST.to_email("tracker@example.org", []).as_bytes(), policy=policy.default
    )
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "香港金融管理局 通告" in message.get_body(("plain",)).get_content()
    assert message["Subject"] == DIGEST.subject and "\n" not in message["Subject"]


def change(
    change_id,
    source,
    url,
    kind="new",
    title="Joint Circular on the Cross-Sectoral Cyber Mapping Exercise",
):
    return {
        "id": change_id,
        "kind": kind,
        "source": source,
        "title": title,
        "url": url,
        "date": "2026-07-29",
        "fields": [],
        "changed": [],
        "detected_at": "2026-11-22T03:00:00+00:00",
    }


def test_one_publication_announced_by_several_sources_is_one_entry():
    press = "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/07/20260731-4/"
    digest = Digest.of_changes(
        datetime(2026, 11, 22, tzinfo=UTC),
        [
            change(1, "rss", "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20260729-1-EN"),
            change(2, "brdr", "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20260729-1-EN"),
            change(3, "rss", press, title="International Reserves"),
            change(4, "press_releases", press, title="International Reserves"),
            change(
                5,
                "brdr",
                "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20260729-1-EN",
                kind="changed",
            ),
            # Two documents of one source under one link (as LegCo items are): both kept.
            change(6, "rss", press, title="Another item under the same link"),
        ],
        source_titles=source_titles(),
    )
    assert [(e.change_id, e.kind, e.also_in) for e in digest.entries] == [
        (5, "changed", ()),
        (6, "new", ()),
        (1, "new", ("brdr",)),
        (3, "new", ("press_releases",)),
    ]
    assert digest.subject == "HKMA tracker: 4 changes (3 new, 1 changed)"
    assert "Also in: Banking Regulatory Document Repository" in digest.render_text()


def test_word_level_changes_and_value_changes():
    old = snapshot(
        "Generative A.I. Sandbox (“Sandbox”)",
        "2025-04-10",
        {
            "text": "Keep this. The revised requirements will take effect on 1 March 2026. Yours faithfully."
        },
    )
    new = snapshot(
        "Generative AI Sandbox",
        "2025-12-15",
        {
            "text": "Keep this. The revised requirements will take effect on 1 June 2026. Yours faithfully."
        },
    )
    entry = DigestEntry(
        1, "changed", "rss", "T", "https://www.hkma.gov.hk/x", None, *changed(old, new), "now"
    )
    assert entry.fields == ["date", "document.text", "title"]
    assert entry.word_change_lines == [
        "Generative [-A.I.-] {+AI+} Sandbox [-(“Sandbox”)-]",
        "The revised requirements will take effect on 1 [-March-] {+June+} 2026.",
    ]
    assert entry.value_changes == ["Date: 2025-04-10 → 2025-12-15"]
    html = Digest(datetime(2026, 11, 22, tzinfo=UTC), [entry]).render_html()
    assert (
        'text-decoration:line-through;">March</span>' in html
        and "<del" not in html
        and "<ins" not in html
    )


def test_a_link_that_is_its_document_is_said_once():
    """The IA lists a guideline by its PDF: a new file is both the listing's link and the
    document's, and the entry says it once, as the document link."""
    old_pdf = "https://www.ia.org.hk/en/legislative_framework/files/GL3_ENG_202505.pdf"
    new_pdf = "https://www.ia.org.hk/en/legislative_framework/files/GL3_ENG_202607.pdf"
    moved = {"old": old_pdf, "new": new_pdf}
    guideline = {
        **change(1, "ia", new_pdf, kind="changed"),
        "fields": ["extra.document_url", "url"],
        "changed": [{"field": "extra.document_url", **moved}, {"field": "url", **moved}],
    }
    (entry,) = Digest.of_changes(datetime(2026, 11, 22, tzinfo=UTC), [guideline]).entries
    assert entry.value_changes == [f"Document link: {old_pdf} → {new_pdf}"]
    assert entry.other_fields == []
    # A listing link that moved apart from its document is still said.
    apart = {**guideline, "changed": [{"field": "extra.document_url", **moved},
             {"field": "url", "old": "https://www.ia.org.hk/a", "new": "https://www.ia.org.hk/b"}]}  # fmt: skip
    (entry,) = Digest.of_changes(datetime(2026, 11, 22, tzinfo=UTC), [apart]).entries
    assert len(entry.value_changes) == 2


def test_two_changes_of_one_document_are_one_entry():
    url = "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20261020-70-EN"
    version = {
        "extra.version": {"old": "20250101-1", "new": "20261020-70"},
        "url": {"old": "a", "new": "b"},
    }
    listing = {
        **change(1, "brdr", url, kind="changed"),
        "document_id": "brdr:spm:IC-6",
        "fields": ["extra.version", "url"],
        "changed": [{"field": f, **values} for f, values in version.items()],
    }
    fields, what = changed(snapshot(document={"text": "Old."}), snapshot(document={"text": "New."}))
    text = {
        **change(2, "brdr", url, kind="changed"),
        "document_id": "brdr:spm:IC-6",
        "fields": fields,
        "changed": list(what),
    }
    digest = Digest.of_changes(datetime(2026, 11, 22, tzinfo=UTC), [listing, text])
    (entry,) = digest.entries
    assert entry.fields == ["extra.version", "url", "document.text"]
    assert entry.word_change_lines == ["[-Old.-] {+New.+}"]
    # In an officer's words: the version once, no stored field name.
    assert entry.new_version == "New version 20261020-70 (was 20250101-1)"
    assert (entry.value_changes, entry.other_fields) == ([], ["Document text"])
    text = digest.render_text()
    assert "New version 20261020-70 (was 20250101-1)" in text and "change 2" in text
    assert "extra." not in text and "document.text" not in text and "url:" not in text


def test_a_moved_date_leads_the_entry_and_the_summary():
    fields, what = changed(
        snapshot(document={"effective_dates": [{"date": "2026-03-01", "sentence": "s"}]}),
        snapshot(document={"effective_dates": [{"date": "2026-06-01", "sentence": "s"}]}),
    )
    moved = {**change(1, "pages", "https://www.hkma.gov.hk/a.pdf", kind="changed"),
             "fields": fields, "changed": list(what), "title": "Measures to protect customers"}  # fmt: skip
    digest = Digest.of_changes(datetime(2026, 11, 22, tzinfo=UTC), [moved])
    (entry,) = digest.entries
    assert entry.moved_dates == ["Takes effect: 2026-03-01 → 2026-06-01"]
    assert entry.other_fields == [] and entry.value_changes == []
    assert digest.summary()["dates_moved"] == [
        ("Measures to protect customers", "Takes effect: 2026-03-01 → 2026-06-01")
    ]
    text = digest.render_text()
    assert (
        "Date moved: Takes effect: 2026-03-01 → 2026-06-01: Measures to protect customers" in text
    )
    lines = text.split("[CHANGED] Measures to protect customers\n", 1)[1].splitlines()
    assert lines[1] == "  DATE MOVED: Takes effect: 2026-03-01 → 2026-06-01"  # after its link


def grouped(change_id, kind, group, day, title, functions=(), effective="", closes=""):
    return dataclasses.replace(
        entry(change_id, kind, "rss", title),
        group=group,
        date=day,
        functions=tuple(functions),
        tags=tuple(functions),
        effective=effective,
        closes=closes,
    )


MIXED = Digest(
    datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
    [
        grouped(1, "new", "news", "2026-11-20", "Press release", ["Financial"]),
        grouped(2, "new", "instruments", "2026-10-01", "Older circular", ["AML/CFT"], "2026-12-01"),
        grouped(3, "changed", "pages", "2026-11-21", "A page row"),
        grouped(4, "new", "instruments", "2026-11-18", "Newer circular", ["AML/CFT", "Fraud"]),
        grouped(
            5,
            "new",
            "consultations",
            "2026-11-19",
            "Consultation paper",
            [],
            "2027-03-01",
            "2026-12-19",
        ),
        grouped(6, "removed", "instruments", "2026-11-18", "Withdrawn guideline", [], "2026-11-01"),
    ],
    source_titles=source_titles(),
    group_titles=DIGEST_GROUPS,
    audience="aml-team (functions: AML/CFT)",
)


def test_sections_come_as_an_officer_files_them_and_newest_first_within():
    assert [(name, [e.change_id for e in entries]) for name, entries in MIXED.groups()] == [
        ("Circulars, guidelines, SPM modules and codes", [4, 6, 2]),
        ("Consultations", [5]),
        ("Topic pages", [3]),
        ("Press releases, speeches and LegCo papers", [1]),
    ]


def test_the_summary_counts_and_names_what_takes_effect_within_30_days():
    assert MIXED.summary() == {
        "kinds": {"new": 4, "changed": 1, "removed": 1},
        "untagged": 0,
        "dates_moved": [],
        "functions": {"AML/CFT": 2, "Financial": 1, "Fraud": 1},
        "regulators": {"HKMA": 6},  # stored before other regulators: the HKMA's
        "effective_soon": [("2026-12-01", "Older circular")],  # not the past, not March
        "closing_soon": [("2026-12-19", "Consultation paper")],
        "open_reviews": 0,
        "open_reviews_words": "0 changes",
        "days_open": 0,
    }
    text, html = MIXED.render_text(), MIXED.render_html()
    assert "Still to review" not in text + html
    for part in (text, html):
        assert part.index("Takes effect 2026-12-01") < part.index("Newer circular")
        assert part.index("Consultation closes 2026-12-19") < part.index("Newer circular")
        assert "Generated 2026-11-22 11:00 HKT" in part and "UTC" not in part
        assert "aml-team (functions: AML/CFT)" in part
    order = [text.index(title) for title in ("== Circulars", "== Consultations", "== Topic")]
    assert order == sorted(order)  # the plain text mirrors the HTML's order


def test_the_summary_says_what_is_still_to_review_and_the_calendar_rides_along():
    waiting = dataclasses.replace(
        MIXED, open_reviews=3, oldest_open="2026-11-08T03:00:00+00:00", calendar=b"BEGIN:VCALENDAR"
    )
    assert (waiting.summary()["open_reviews"], waiting.summary()["days_open"]) == (3, 14)
    for part in (waiting.render_text(), waiting.render_html()):
        assert "3 changes, the oldest open 14 days" in part
        assert "Deadlines calendar attached (hkma-deadlines.ics)" in part
    many = dataclasses.replace(waiting, open_reviews=1000, open_reviews_at_least=True)
    assert "1000 or more changes, the oldest open 14 days" in many.render_text()
    email = waiting.to_email("tracker@example.org", ["officer@example.org"])
    (attached,) = list(email.iter_attachments())
    assert attached.get_content_type() == "text/calendar"
    assert attached.get_filename() == "hkma-deadlines.ics"
    assert email.get_body(("plain",)) is not None and email.get_body(("html",)) is not None
    assert MIXED.deadlines_changed  # it brings dates that take effect and close
    assert not dataclasses.replace(MIXED, entries=MIXED.entries[:1]).deadlines_changed  # news
    removed = dataclasses.replace(MIXED, entries=MIXED.entries[-1:])
    assert removed.deadlines_changed  # a removed document's date is cancelled


def test_words_and_dates_are_never_broken_only_urls_may_wrap():
    html = MIXED.render_html()
    assert "break-all" not in html
    assert re.search(r'<div style="[^"]*overflow-wrap:anywhere;">https://www\.hkma', html)


@pytest.mark.parametrize(
    ("source", "extra", "group"),
    [
        ("rss", {"feed": "circulars"}, "instruments"),
        ("rss", {"feed": "consultations"}, "consultations"),
        ("rss", {"feed": "speeches"}, "news"),
        ("brdr", {"doc_type": "SPM"}, "instruments"),
        ("brdr", {"doc_type": "CPR"}, "consultations"),
        ("pages", {}, "pages"),
        ("press_releases", {}, "news"),
    ],
)
def test_each_source_says_which_section_its_documents_go_in(source, extra, group):
    assert digest_group(source, extra) == group


def test_entries_say_what_they_are_without_naming_a_field_twice():
    new = DigestEntry.from_change(
        {
            **change(1, "pages", "https://www.hkma.gov.hk/x.pdf"),
            "functions": ["AML/CFT"],
            "products": ["Banking"],
            "entity_types": ["Banks (authorized institutions)"],
            "document_extra": '{"sections": ["Circulars"]}',
            "listed_in": "Guidance papers and circulars › Circulars",
            "document_content": '{"text": "' + "word " * 100 + '"}',
        }
    )
    assert new.tags == ("AML/CFT", "Banking", "Banks (authorized institutions)")
    assert new.listed_under == "Guidance papers and circulars › Circulars"
    assert new.excerpt.endswith(" …") and len(new.excerpt) <= 242
    moved = dataclasses.replace(
        new,
        kind="changed",
        fields=["date", "title"],
        changed=changed(snapshot("old words", "2025-04-10"), snapshot("new words", "2025-12-15"))[
            1
        ],
    )
    assert moved.value_changes == ["Date: 2025-04-10 → 2025-12-15"]
    assert moved.other_fields == ["Title"]  # its words are shown, unnamed
    removed = DigestEntry.from_change(
        {
            **change(2, "pages", "https://www.hkma.gov.hk/y.pdf", kind="removed"),
            "document_extra": '{"sections": ["Guidance papers"]}',
            "listed_in": "Guidance papers",
            "document_last_seen": "2026-11-20T01:00:00+00:00",
        }
    )
    text = Digest(datetime(2026, 11, 22, tzinfo=UTC), [removed]).render_text()
    assert "\n  Removed from: Guidance papers\n  Last listed 2026-11-20\n" in text
    late = DigestEntry.from_change(
        {**change(2, "pages", "https://www.hkma.gov.hk/y.pdf", kind="removed"),
         "document_last_seen": "2026-11-20T16:30:00+00:00"}
    )  # fmt: skip
    assert late.last_seen == "2026-11-21"  # 00:30 in Hong Kong: the day its readers call it
    # A feed's item says where it was listed only when it left.
    feed_item = {
        **change(3, "rss", "https://www.hkma.gov.hk/c.pdf"),
        "document_extra": '{"feed": "circulars"}',
        "listed_in": listed_in("rss", {"feed": "circulars"}, None),
    }
    assert DigestEntry.from_change(feed_item).listed_under == ""
    gone = DigestEntry.from_change({**feed_item, "kind": "removed"})
    assert gone.listed_under == "the HKMA RSS feed “circulars”"


@pytest.mark.parametrize(
    "source, extra, page, where",
    [
        (
            "pages",
            {"sections": ["Circulars", "Guidance"]},
            "AML/CFT",
            "AML/CFT › Circulars, Guidance",
        ),
        ("pages", {"kind": "topic-page"}, None, ""),
        (
            "brdr",
            {"doc_type": "CIR", "doc_type_desc": "Circular"},
            None,
            "the BRDR register, Circular",
        ),
        ("press_releases", {}, None, "the HKMA press-release API"),
        ("unknown", {}, None, ""),
    ],
)
def test_each_source_says_where_its_documents_are_listed(source, extra, page, where):
    assert listed_in(source, extra, page) == where


def test_a_consultation_says_when_it_closes_from_brdr_or_its_text():
    record = {
        **change(4, "brdr", "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20251201-1-EN"),
        "document_extra": '{"doc_type": "CPR", "consultation": {"status": "OPEN", '
        '"opens": "2025-12-01", "closes": "2026-01-31"}}',
        "document_content": '{"consultation_closes": [{"date": "2026-02-15", "sentence": "x"}]}',
    }
    assert DigestEntry.from_change(record).closes == "2026-01-31"  # the register's word first
    record["document_extra"] = '{"doc_type": "CPR"}'
    assert DigestEntry.from_change(record).closes == "2026-02-15"


def test_each_entry_and_the_summary_name_the_regulator():
    """Issue 25: a digest of HKMA's and the SFC's changes counts each and says whose an entry
    is, in both parts and in a webhook's JSON."""
    hkma = change(1, "rss", "https://www.hkma.gov.hk/media/eng/doc/a.pdf")
    sfc = {
        **change(
            2, "sfc", "https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/doc?refNo=26EC45"
        ),
        "regulator": "SFC",
        "title": "Circular to licensed corporations on cybersecurity",
    }
    digest = Digest.of_changes(datetime(2026, 11, 22, tzinfo=UTC), [hkma, sfc])
    assert digest.summary()["regulators"] == {"HKMA": 1, "SFC": 1}
    text, html = digest.render_text(), digest.render_html()
    for part in (text, html):
        assert "By regulator: HKMA 1" in part and "SFC 1" in part
    assert "SFC · Dated 2026-07-29" in text and ">SFC &middot; Dated " in html
    assert [c["regulator"] for c in digest.payload("json")["changes"]] == ["HKMA", "SFC"]
