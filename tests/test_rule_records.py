"""Rule records over a real history: the 1,025 items of HKMA's live feeds in
tests/labelled/feed_items.jsonl (origin in tests/labelled/README.md), grouped as the tracker
groups its documents. Each test names real publications and what a compliance officer expects
of their records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tracker.rule_records import Grouping, Publication, acronyms, group, series_title, subject

LEDGER = Path(__file__).parent / "labelled" / "feed_items.jsonl"
_BRDR = re.compile(r"/doc-ldg/current/(\d{8}-\d+)-EN")


def publication_id(link: str) -> str:
    match = _BRDR.search(link)
    return f"brdr:{match.group(1)}" if match else link


@pytest.fixture(scope="module")
def history() -> list[Publication]:
    seen: dict[str, Publication] = {}
    for line in LEDGER.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        key = publication_id(item["link"])
        seen.setdefault(key, Publication(key, item["title"], item["date"], item["feed"]))
    return list(seen.values())


@pytest.fixture(scope="module")
def grouping(history) -> Grouping:
    return group(history)


def record_of(grouping: Grouping, history: list[Publication], title: str) -> list[str]:
    """The titles in the record of the publication titled `title` (exactly, or its start)."""
    titles = {p.id: p.title for p in history}
    (wanted,) = {p.id for p in history if p.title == title} or {
        p.id for p in history if p.title.startswith(title)
    }
    (record,) = [r for r in grouping.records if wanted in r]
    return [titles[i] for i in record]


def test_every_publication_is_in_exactly_one_record(history, grouping):
    held = [pid for record in grouping.records for pid in record]
    assert sorted(held) == sorted(p.id for p in history)


def test_a_consultation_and_its_conclusions_share_a_record(history, grouping):
    record = record_of(grouping, history, "Consultation on annual update to the list of Finan")
    assert any(t.startswith("Joint consultation conclusions paper on the annual") for t in record)
    # The same Clearing Rules, another exercise a year later: not this record.
    assert not any("standard calculation periods" in t for t in record)


def test_an_initiative_is_followed_across_press_releases_circulars_and_speeches(history, grouping):
    record = record_of(grouping, history, "Generative Artificial Intelligence Sandbox (PDF")
    launch = "Regulators launch GenA.I. Sandbox++ to foster A.I. innovation across financial "
    assert launch + "services" in record
    assert "Joint Circular on the Expansion of Generative Artificial Intelligence Sandbox" in record
    assert any(t.startswith("Opening Remarks at GenA.I. Symposium") for t in record)
    # Another sandbox shares a word, not a name.
    assert "Intellectual Property Financing Sandbox" not in record


def test_acronyms_are_read_from_the_history_itself(history, grouping):
    spelled = acronyms(p.title for p in history)
    assert spelled["PAPT"] == ["payment", "arrangements", "property", "transactions"]
    assert spelled["IRRBB"] == ["interest", "rate", "risk", "banking", "book"]
    assert spelled["A.I."] == ["artificial", "intelligence"]  # GenA.I. Sandbox
    assert spelled["DLT"] == ["distributed", "ledger", "technology"]  # defined: "... (DLT)"
    # Initials that match words by chance are not taken: "IP" (two letters, no definition),
    # "CFT" (Completes Field Trip? Counter-Financing of Terrorism? nothing decides).
    assert "IP" not in spelled and "CFT" not in spelled
    record = record_of(grouping, history, "Expansion of Payment Arrangements for Property")
    assert any(t.startswith("Expansion of PAPT to cover") for t in record)


def test_titles_naming_different_modules_or_years_never_join_by_name():
    modules = [
        Publication(
            "a",
            "Revised Supervisory Policy Manual (SPM) Module CA-G-5 on “Supervisory Review Process”",
            "2025-01-24",
            "circulars",
        ),
        Publication(
            "b",
            "Revised Supervisory Policy Manual (SPM) Module CA-G-1 on “Overview of "
            "Capital Adequacy Regime”",
            "2024-11-29",
            "circulars",
        ),
        Publication(
            "c",
            "Consultation: revised SPM module CA-G-5 “Supervisory Review Process”",
            "2026-03-19",
            "consultations",
        ),
        Publication("d", "SFC and HKMA joint product survey 2024", "2024-12-06", "circulars"),
        Publication("e", "SFC and HKMA joint product survey 2025", "2025-12-05", "circulars"),
    ]
    grouping = group(modules)
    assert sorted(map(sorted, grouping.records)) == [["a", "c"], ["b"], ["d"], ["e"]]
    (join,) = grouping.joins
    assert join.evidence == "same spm:CA-G-5" and join.strength == 1.0


def test_reference_numbers_join_nothing():
    """HKMA's reference numbers are file references ("B1/15C" on every circular of its file):
    sharing one is no evidence of one rule."""
    titles = ["Licence Fees", "Cooling-off Period for Unsecured Consumer Credit Products"]
    circulars = [
        Publication(f"c{n}", title, f"2025-0{n}-01", "circulars", frozenset({"ref:B1/15C"}))
        for n, title in enumerate(titles, start=1)
    ]
    assert group(circulars).records == [["c1"], ["c2"]]


def test_the_subject_of_a_title_leaves_out_its_pdf_note_byline_and_annex():
    assert subject("Licence Fees (PDF File, 151.2 KB)") == "Licence Fees"
    assert (
        subject(
            "Opening Remarks at FiNETech8 on “Navigating Quantum Duality” by Carmen Chu, "
            "Executive Director (Banking Supervision), Hong Kong Monetary Authority"
        )
        == "Opening Remarks at FiNETech8 on “Navigating Quantum Duality”"
    )
    assert (
        subject("Generative Artificial Intelligence Sandbox: Second Cohort Annex: Arrangement")
        == "Generative Artificial Intelligence Sandbox: Second Cohort"
    )


def test_a_document_whose_text_names_another_by_title_joins_its_record():
    """The Phase 2A taxonomy's circular (real title) whose text names the consultation (real
    title) by its title: one record, whatever their titles share; a short title named in
    passing ("Licence Fees") links nothing, and neither does a document's own title."""
    from storage.records import Snapshot
    from tracker.rule_records import TitleIndex, records_of

    consultation = (
        "Consultation on Phase 2A prototype of Hong Kong Taxonomy for Sustainable Finance"
    )
    circular = "Hong Kong Taxonomy for Sustainable Finance (Phase 2A)"
    text = (
        f"{circular} I am writing to inform you that, following the {consultation.lower()} "
        "launched in September 2025, the HKMA has published the taxonomy. Licence Fees are "
        "not affected."
    )
    index = TitleIndex(
        {
            "cons": (consultation, "2025-09-08"),
            "circ": (circular, "2026-01-22"),
            "fees": ("Licence Fees", "2024-06-14"),
            "later": ("Following the consultation on Phase 2A", "2026-06-01"),  # after the text
        }
    )
    links = index.links(Snapshot(circular, "https://x", "2026-01-22", "", {}, {"text": text}))
    assert [(link.key, link.kind) for link in links] == [("doc:cons", "names")]

    def row(doc_id, title, date, feed, keys):
        return {"id": doc_id, "source": "rss", "title": title, "url": f"https://hkma/{doc_id}",
                "date": date, "extra": {"feed": feed}, "keys": {f"doc:{doc_id}", *keys}}  # fmt: skip

    records, _ = records_of(
        [
            row("cons", consultation, "2025-09-08", "consultations", set()),
            row("circ", "Publication of the taxonomy", "2026-01-22", "circulars", {"doc:cons"}),
            row("fees", "Licence Fees", "2026-01-23", "circulars", set()),
        ],
        [],
    )
    joined = next(r for r in records if r["started_by"] == "cons")
    assert [(m["document_id"], m["evidence"]) for m in joined["members"]] == [
        ("cons", "started the record"),
        ("circ", "its text names the other's title"),
    ]


def test_an_instrument_is_followed_by_the_name_at_the_head_of_its_titles(history, grouping):
    """The cryptoassets standard over a year: a consultation published with twenty return
    templates one morning (one use of its name, not twenty), its gazettal, its SPM modules."""
    record = record_of(grouping, history, "Rules on cryptoassets standard and other updates")
    assert "Gazettal of rules: cryptoassets standard and other updates" in record
    assert any(
        t.startswith("Cryptoassets standard: gazettal of revised SPM modules") for t in record
    )
    assert any(
        t.startswith("Letter to HKAB: Cryptoassets standard: consultation on new and revised SPM")
        for t in record
    )
    assert any(t.startswith("Letter to DTCA: Cryptoassets standard and other misc") for t in record)


def test_two_records_do_not_merge_through_one_generic_title(history, grouping):
    """A consultation titled "revised disclosure templates and tables" is held whole by the
    long title "Cryptoassets Standard: SPM Modules, Code of Practice, Disclosure Templates and
    Tables, and Banking Returns"; the two records it would bridge are alike in nothing else."""
    record = record_of(grouping, history, "Rules on cryptoassets standard and other updates")
    assert (
        "Cryptoassets Standard: SPM Modules, Code of Practice, Disclosure Templates and "
        "Tables, and Banking Returns" in record
    )
    assert not any(t.startswith("Consultation on revised disclosure templates") for t in record)
    assert not any("LAC" in t for t in record)


def test_an_acronym_written_in_mixed_case_is_read_by_its_capitals(history, grouping):
    """The acronym "CCyB" is Countercyclical Capital Buffer: the ratio's announcements and the
    revision of the module on it are one record."""
    assert acronyms(p.title for p in history)["CCyB"] == ["countercyclical", "capital", "buffer"]
    record = record_of(grouping, history, "CCyB: revised SPM module CA-B-3")
    assert any(t.startswith("Applicable Jurisdictional Countercyclical Capital") for t in record)


def test_titles_naming_different_sums_are_different_cases(history, grouping):
    """One enforcement series, two cases: the fines' amounts tell them apart."""
    hsbc = "Enforcement collaboration between HKMA and SFC - SFC reprimands and fines HSBC"
    record = record_of(grouping, history, hsbc)
    assert not any("EFG Bank" in t for t in record)


def test_a_press_release_joins_what_it_announces_the_same_day(history, grouping):
    """The press release wraps the guideline's name in other words (a weak match alone); issued
    the same day as the guideline, it announces it. Two press releases the same day on two
    disciplinary actions are two cases, however alike their wording."""
    record = record_of(grouping, history, "Banking industry introduces enhancements to elderly")
    assert (
        "Guideline on Elderly-friendly Banking Services of Hong Kong Association of Banks" in record
    )
    record = record_of(grouping, history, "Monetary Authority takes disciplinary actions against")
    assert not any("33 Financial Services" in t for t in record)


def test_a_title_published_word_for_word_time_after_time_is_a_series_not_a_record(
    history, grouping
):
    """The Base Rate adjusted, coins collected, a tender schedule: the same title on three
    days or more is a series, not one initiative, however rare its words look in a short
    history. No name joins them."""
    titles = {p.id: p.title for p in history}
    for title in ("Adjustment of Base Rate", "Coin Collection Programme"):
        published = [p.id for p in history if p.title == title]
        assert len(published) >= 3
        for pid in published:
            (record,) = [r for r in grouping.records if pid in r]
            assert [titles[i] for i in record] == [title], title


def test_a_series_whose_titles_differ_only_in_their_dates_is_not_a_record(history, grouping):
    """Quarterly statistics and tender results carry their date in the title: still one title
    published time after time, a series that no name joins. A consultation named by a date
    once is not a series."""
    titles = {p.id: p.title for p in history}
    for start in (
        "Exchange Fund Position at end-",
        "Residential mortgage loans in negative equity",
    ):
        published = [p.id for p in history if p.title.startswith(start)]
        assert len({titles[i] for i in published}) >= 3, start
        for pid in published:
            (record,) = [r for r in grouping.records if pid in r]
            assert [titles[i] for i in record] == [titles[pid]], titles[pid]
    assert series_title("Tender of 2-Year Exchange Fund Notes to be held on 20 February 2026") == (
        "tender of 2-year exchange fund notes to be held on <date>"
    )
    assert series_title("Mayday drill results") == "mayday drill results"  # a word, not May
    assert series_title("Hong Kong Taxonomy for Sustainable Finance (Phase 2A)") == (
        "hong kong taxonomy for sustainable finance (phase 2a)"
    )
