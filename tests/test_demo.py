"""First contact: the demo shows every source and what each brings on a second day, and its
database answers the examples of the help and every canned query."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from click.testing import CliRunner

from tracker.cli import cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["demo", "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    return workdir, result.stdout


def test_day_2_brings_news_from_every_source(demo):
    _, output = demo
    day2 = output.split("== Day 2", 1)[1]
    for source, news in {
        "rss": "6 new, 1 changed",
        "pages": "1 new, 2 changed, 1 removed",
        "brdr": "1 new, 2 changed",
        "press_releases": "3 new",
        "sfc": "3 new, 2 changed",
        "ia": "2 new, 1 changed",
    }.items():
        assert re.search(rf"^{source}: healthy; \d+ items, {news}", day2, re.MULTILINE), source
    digest = day2.split("== Digest", 1)[1]
    assert "[CHANGED] Supervisory Policy Manual IC-6" in digest  # an SPM revision
    assert "Superseded by Revised: " in digest  # a supersession
    # A PDF's effective date moved, three months on: the entry and the summary lead with it.
    assert re.search(r"^  DATE MOVED: Takes effect: \S+ → \S+$", digest, re.MULTILINE)
    assert "Date moved: Takes effect:" in digest
    # An SPM revision in an officer's words: no stored field name anywhere.
    assert "New version 20261020-70 (was 20260609-63)" in digest
    assert "extra." not in digest and "document.text" not in digest
    assert "HKMA press releases" in digest
    # Three regulators, each entry labelled with its own, counted in the summary.
    assert re.search(r"^By regulator: HKMA \d+ · SFC 5 · IA 3$", digest, re.MULTILINE)
    for regulator, title in (
        ("SFC", "Circular to licensed corporations and registered institutions on the use of"),
        ("SFC", "Consultation Conclusions on proposed enhancements to the Code of Conduct"),
        ("SFC", "Fit and Proper Guidelines"),
        ("IA", "Circular on Cybersecurity of Authorized Insurers"),
        ("IA", "GL3: Guideline on Anti-Money Laundering and Counter-Terrorist Financing"),
    ):
        assert re.search(
            rf"^\[(NEW|CHANGED)\] {re.escape(title)}.*\n.*\n  {regulator} · ", digest, re.MULTILINE
        ), title
    # A row gone from a topic page says from which page and section, and when last listed.
    assert re.search(
        r"^\[REMOVED\] .*\n.*\n.*\n  Removed from: Circulars & Guidance Papers › Guidance Papers\n"
        r"  Last listed \d{4}-\d{2}-\d{2}\n",
        digest,
        re.MULTILINE,
    )


def test_the_help_examples_and_the_canned_queries_work_on_the_demo_database(demo):
    workdir, _ = demo
    db = str(workdir / "demo.db")
    runner = CliRunner()
    for args in (
        ["rule", "spm:IC-6"],
        ["rule", "IC-5"],
        ["changes", "--function", "AML/CFT", "--json"],
        ["search", "money laundering"],
        ["export", "--format", "csv", "--product", "Wealth Mgt", "--include-baseline"],
        ["status"],
        ["runs", "--limit", "5", "--json"],
    ):
        result = runner.invoke(cli, ["--db", db, *args])
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout, args

    datasette_app = pytest.importorskip("datasette.app")
    from tracker.datasette_plugin import QUERIES

    async def answers():
        ds = datasette_app.Datasette([db])
        params = (
            "function=AML&product=banking&entity_type=banks&key=spm:IC-6&query=laundering"
            "&change_id=1&from_date=2020-01-01&to_date=2099-12-31"
        )
        return {
            name: (await ds.client.get(f"/demo/{name}.json?{params}&_shape=array")).json()
            for name in QUERIES
        }

    import asyncio

    rows = asyncio.run(answers())
    empty = {name for name, found in rows.items() if not found}
    # Nothing is unreadable in the demo and no change has been reviewed yet. The demo's
    # publications carry fixed dates: "records updated this week" has rows only within a week
    # of the newest, and then it must.
    with sqlite3.connect(db) as conn:
        (newest,) = conn.execute("SELECT max(last_date) FROM records").fetchone()
        (week_start,) = conn.execute("SELECT date('now', '+8 hours', '-7 days')").fetchone()
    may_be_empty = {"unreadable_documents", "review_log"}
    if newest < week_start:
        may_be_empty.add("records_updated_this_week")
    assert empty <= may_be_empty, empty
    assert rows["upcoming_deadlines"] and rows["untagged_instruments"]
    assert rows["checks_in_period"] and rows["open_reviews"]
    assert json.dumps(rows["superseded_rules"]).count("superseded") >= 1


def test_the_demo_tells_each_document_apart_and_judges_itself_by_what_it_watched(demo):
    workdir, output = demo
    base = ["--config", str(workdir / "demo.toml"), "--db", str(workdir / "demo.db")]
    assert f"Explore: hkma-tracker --config {workdir / 'demo.toml'}" in output
    status = CliRunner().invoke(cli, [*base, "status", "--json"])
    sources = [r for r in map(json.loads, status.stdout.splitlines()) if "source" in r]
    assert len(sources) == 6 and all(r["healthy"] and not r["overdue"] for r in sources)
    # One regulator's changes, each saying whose they are.
    sfc = CliRunner().invoke(cli, [*base, "changes", "--regulator", "SFC", "--json"])
    events = [json.loads(line) for line in sfc.stdout.splitlines()]
    assert len(events) == 5 and {e["regulator"] for e in events} == {"SFC"}
    assert CliRunner().invoke(cli, [*base, "alerts", "check"]).exit_code == 0
    assert not list((workdir / "digests").glob("*-operator.eml"))  # nothing to tell
    # Deadlines lie ahead (counted from the day the demo ran), one per document.
    upcoming = CliRunner().invoke(cli, [*base, "deadlines", "--days", "120", "--json"])
    rows = [json.loads(line) for line in upcoming.stdout.splitlines()]
    assert len(rows) >= 20 and len({r["date"] for r in rows}) >= 10
    assert any(r["kind"] == "consultation closes" for r in rows)
    # Each document's text is its own: tags differ from document to document.
    changes = CliRunner().invoke(cli, [*base, "changes", "--include-baseline", "--json"])
    tag_sets = {tuple(c["functions"]) for c in map(json.loads, changes.stdout.splitlines())}
    assert len(tag_sets) >= 15
    timeline = CliRunner().invoke(cli, [*base, "rule", "IC-6"])
    assert timeline.exit_code == 0 and len(timeline.output.splitlines()) < 30


def record_id_of(db, title_start):
    import sqlite3

    with sqlite3.connect(db) as conn:
        (found,) = conn.execute(
            "SELECT m.record_id FROM record_members m JOIN documents d ON d.id = m.document_id "
            "WHERE d.title LIKE ? GROUP BY m.record_id",
            [title_start + "%"],
        ).fetchall()
    return found[0]


def test_a_record_holds_a_consultation_its_conclusions_and_their_press_release(demo):
    workdir, _ = demo
    db = str(workdir / "demo.db")
    record = record_id_of(db, "Joint consultation paper on proposed amendments to the Clearing")
    shown = CliRunner().invoke(cli, ["--db", db, "record", str(record), "--json"])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    kinds = [(u["date"], u["kind"]) for u in view["updates"]]
    assert sorted(kinds) == [
        ("2026-01-29", "consultation"),
        ("2026-06-05", "consultation"),
        ("2026-06-05", "press release"),
    ]
    assert any(u["title"].startswith("Join consultation conclusions") for u in view["updates"])
    assert view["rule_type"] == "consultation concluded"
    assert view["regulator"] == "HKMA" and "Securities" in view["products"]
    # A record is found from any of its documents too, and listed by `records`.
    document = view["updates"][0]["documents"][0]
    by_document = CliRunner().invoke(cli, ["--db", db, "record", document, "--json"])
    assert json.loads(by_document.output)["id"] == record
    listed = CliRunner().invoke(
        cli, ["--db", db, "records", "--since", "2026-06-01", "--limit", "1000", "--json"]
    )
    assert record in [json.loads(line)["id"] for line in listed.output.splitlines()]


def test_one_publication_is_one_update_whatever_listings_carry_it(demo):
    workdir, _ = demo
    db = str(workdir / "demo.db")
    record = record_id_of(db, "Generative Artificial Intelligence Sandbox: Second Cohort Annex")
    view = json.loads(CliRunner().invoke(cli, ["--db", db, "record", str(record), "--json"]).output)
    (annex,) = [u for u in view["updates"] if u["publication"] == "brdr:20250428-3"]
    assert annex["sources"] == ["brdr", "rss"] and len(annex["documents"]) == 2
    assert len({u["publication"] for u in view["updates"]}) == len(view["updates"])
    text = CliRunner().invoke(cli, ["--db", db, "record", str(record)]).output
    assert f"{len(view['updates'])} updates, newest first:" in text


def test_officers_corrections_of_records_survive_recomputation(demo, tmp_path):
    import shutil
    import sqlite3

    workdir, _ = demo
    db = str(tmp_path / "copy.db")
    shutil.copy(workdir / "demo.db", db)
    base = ["--db", db]
    record = record_id_of(db, "Joint consultation paper on proposed amendments to the Clearing")
    view = json.loads(CliRunner().invoke(cli, [*base, "record", str(record), "--json"]).output)
    release = next(u for u in view["updates"] if u["kind"] == "press release")["documents"][0]

    split = CliRunner().invoke(cli, [*base, "record", "split", release, "--by", "J. Chan"])
    assert split.exit_code == 0, split.output
    assert "started the record (set by J. Chan)" in split.output
    retitled = CliRunner().invoke(
        cli,
        [*base, "record", "retitle", str(record), "OTC Clearing Rules: calculation periods",
         "--by", "A. Lee", "--note", "as the desk calls it"],
    )  # fmt: skip
    assert retitled.exit_code == 0, retitled.output
    assert CliRunner().invoke(cli, [*base, "retag"]).exit_code == 0  # records made again
    after = json.loads(CliRunner().invoke(cli, [*base, "record", str(record), "--json"]).output)
    assert after["title"] == "OTC Clearing Rules: calculation periods"
    assert release not in [d for u in after["updates"] for d in u["documents"]]

    joined = CliRunner().invoke(
        cli, [*base, "record", "join", release, str(record), "--by", "J. Chan"]
    )
    assert joined.exit_code == 0, joined.output
    again = json.loads(CliRunner().invoke(cli, [*base, "record", str(record), "--json"]).output)
    assert release in [d for u in again["updates"] for d in u["documents"]]
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT action FROM record_corrections")] == [
            "split", "retitle", "join",
        ]  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM record_corrections")
    unknown = CliRunner().invoke(cli, [*base, "record", "no-such-thing"])
    assert unknown.exit_code == 2 and "no record 'no-such-thing'" in unknown.output


def test_a_digest_entry_says_which_update_of_which_record_it_is(demo):
    workdir, output = demo
    digest = output.split("== Day 2", 1)[1].split("== Digest", 1)[1]
    entry = digest.split("[NEW] Revised: Research Paper on Distributed Ledger Technology", 1)[1]
    entry = entry.split("\n\n", 1)[0]
    assert (
        "Update 4 to: Research Paper on Distributed Ledger Technology in the Financial Sector, "
        "since 2025-03-19" in entry
    )
    # The earlier updates, newest first: a press release (another source), two circulars.
    assert "Earlier: 2026-06-29 press release · 2025-03-19 circular · 2025-03-19 circular" in entry
    # The demo's last words point at that record.
    pointer = re.search(
        r"^A rule record that grew over (\d+) publications from (\d+) sources: "
        r".* record (\d+)  \(or records\)$",
        output,
        re.MULTILINE,
    )
    assert pointer and int(pointer.group(1)) >= 3 and int(pointer.group(2)) >= 2
    # That record, as `record` prints it: when it last changed in substance, in Hong Kong time
    # as every time is shown.
    shown = CliRunner().invoke(cli, ["--db", str(workdir / "demo.db"), "record", pointer[3]])
    assert re.search(
        r"^  last substantive change: +\d{4}-\d\d-\d\d \d\d:\d\d HKT$", shown.output, re.MULTILINE
    ), shown.output
    # A record's first update says nothing of the kind.
    _, first = digest.split("[NEW] International Reserves and Foreign Currency Liquidity", 1)
    assert "Update " not in first.split("\n\n", 1)[0]


def test_each_version_of_an_spm_module_is_an_update_of_its_record(demo):
    workdir, output = demo
    db = str(workdir / "demo.db")
    view = json.loads(
        CliRunner().invoke(cli, ["--db", db, "record", "brdr:spm:IC-6", "--json"]).output
    )
    modules = [(u["publication"], u["date"]) for u in view["updates"] if u["kind"] == "SPM module"]
    assert modules == [("brdr:20261020-70", "2026-10-20"), ("brdr:20260609-63", "2026-06-09")]
    assert any(u["kind"] == "circular" and "IC-6" in u["title"] for u in view["updates"])
    # Day 2's revision of the module is the record's third update, after the first version
    # and the circular that announced it.
    digest = output.split("== Digest", 1)[1]
    entry = digest.split("[CHANGED] Supervisory Policy Manual IC-6", 1)[1].split("\n\n", 1)[0]
    assert "Update 3 to: " in entry
    assert "Earlier: 2026-06-09 " in entry


def test_one_publication_is_one_calendar_event_per_deadline(demo, tmp_path):
    """The second cohort's annex is listed by the circulars feed and by BRDR, and both state
    it takes effect on the same day: subscribed calendars get that deadline once."""
    import icalendar

    workdir, _ = demo
    ics = tmp_path / "d.ics"
    made = CliRunner().invoke(
        cli, ["--db", str(workdir / "demo.db"), "calendar", "--ics", str(ics)]
    )
    assert made.exit_code == 0, made.output
    events = icalendar.Calendar.from_ical(ics.read_bytes()).walk("VEVENT")
    annex = [
        e for e in events
        if "Second Cohort Annex" in str(e["SUMMARY"]) and str(e["SUMMARY"]).startswith("Takes")
    ]  # fmt: skip
    assert len(annex) == 1, [str(e["SUMMARY"]) for e in annex]


def test_one_review_decides_every_listing_of_one_publication(demo, tmp_path):
    """The press release of 31 July came through the RSS feed and the press-release API: two
    change events of one publication, one decision."""
    import shutil
    import sqlite3

    workdir, _ = demo
    db = str(tmp_path / "copy.db")
    shutil.copy(workdir / "demo.db", db)
    with sqlite3.connect(db) as conn:
        twins = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM changes WHERE kind = 'new' AND NOT baseline AND document_id "
                "LIKE '%press-releases/2026/07/20260731-4/' ORDER BY id"
            )
        ]
    assert len(twins) == 2
    done = CliRunner().invoke(
        cli, ["--db", db, "review", "set", str(twins[0]), "actioned", "--owner", "J. Chan"]
    )
    assert done.exit_code == 0, done.output
    assert f"also change {twins[1]}" in done.output
    log = CliRunner().invoke(cli, ["--db", db, "review", "log", str(twins[1]), "--json"])
    (review,) = [json.loads(line) for line in log.output.splitlines()]
    assert (review["state"], review["owner"]) == ("actioned", "J. Chan")
    still_open = CliRunner().invoke(cli, ["--db", db, "review", "list", "--open", "--json"])
    assert not {json.loads(line)["change_id"] for line in still_open.output.splitlines()} & set(
        twins
    )


def test_regrouping_reads_every_listing_detail_the_linker_weighs(demo):
    """Regrouping loads only LINKER_EXTRA of each document's listing details (the whole history
    is held at once): the records are the ones every detail would give."""
    import sqlite3

    from storage.db import open_readonly
    from storage.rule_records import record_corrections, record_inputs
    from tracker.rule_records import LINKER_EXTRA, records_of, register_versions

    workdir, _ = demo
    db = open_readonly(workdir / "demo.db")
    trimmed = record_inputs(db, LINKER_EXTRA)
    with sqlite3.connect(workdir / "demo.db") as conn:
        whole = dict(conn.execute("SELECT id, extra FROM documents"))
    full = [{**d, "extra": json.loads(whole[d["id"]] or "{}")} for d in trimmed]
    assert any(set(d["extra"]) - set(LINKER_EXTRA) for d in full)  # there was more to read
    corrections, versions = record_corrections(db), register_versions(db)
    assert records_of(trimmed, corrections, versions) == records_of(full, corrections, versions)
