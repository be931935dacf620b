"""From alert to decision: deadlines, the calendar, the review log and the attestation report,
over a history made by real runs against 127.0.0.1: BRDR records shaped as the register's API
gives them (consultation status and dates in epoch milliseconds, ../shared/hkma-sources.md) and
a circular whose PDF states when it takes effect."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta

import icalendar
import pytest
import vobject
from click.testing import CliRunner
from conftest import OTHER_REGULATORS_OFF, headless_chromium

from spiders.normalize import HONG_KONG
from storage.db import open_db
from tracker.cli import cli
from tracker.compliance import attestation_report, source_checks
from tracker.config import load_config
from tracker.demo_apis import CIRCULAR, BrdrFake, DocumentsFake, load, make_pdf
from tracker.lock import run_lock
from tracker.loopback import Override, RecordedSite

CONSULTATION = "20261120-1-EN"
CIRCULAR_ID = "20261118-2-EN"
CIRCULAR_PDF = f"/eng/doc-ldg/docId/getPdf/{CIRCULAR_ID}/{CIRCULAR_ID}.pdf"


def epoch_ms(day: str | date) -> int:
    """The API's form of a date: midnight in Hong Kong, in milliseconds since 1970."""
    return int(datetime.fromisoformat(f"{day}T00:00:00+08:00").timestamp() * 1000)


# Deadlines counted from the day the tests run, so that they stay ahead of it.
TODAY = datetime.now(HONG_KONG).date()
OPENS_ON = TODAY - timedelta(days=9)  # past: never upcoming
CLOSES_ON = TODAY + timedelta(days=47)
EXTENDED_TO = TODAY + timedelta(days=78)
EXTENDED_AGAIN = TODAY + timedelta(days=92)
EFFECTIVE_ON = TODAY + timedelta(days=100)


def records() -> list[dict]:
    """Two records derived from the demo register's first: a consultation paper open until
    CLOSES_ON, and a circular whose PDF says it takes effect on EFFECTIVE_ON."""
    base = load("brdr-records.json")[0]
    consultation = {
        **copy.deepcopy(base),
        "docId": CONSULTATION,
        "engDocId": CONSULTATION,
        "chiDocId": CONSULTATION.replace("-EN", "-TC"),
        "docLongTitle": "Consultation on enhancements to the Banking Ordinance",
        "docTypeCode": "CPR",
        "docTypeDesc": "CPR - Consultation Paper",
        "issueDateStr": "20 Nov 2026",
        "issueDate": epoch_ms("2026-11-20"),
        "consultStsCode": "OPEN",
        "consultOpenDate": epoch_ms(OPENS_ON),
        "consultClsDate": epoch_ms(CLOSES_ON),
    }
    circular = {
        **copy.deepcopy(base),
        "docId": CIRCULAR_ID,
        "engDocId": CIRCULAR_ID,
        "chiDocId": CIRCULAR_ID.replace("-EN", "-TC"),
        "docLongTitle": "Guidance on combating high-end money laundering",
        "docTypeCode": "CIR",
        "docTypeDesc": "CIR - Circular",
        "issueDateStr": "18 Nov 2026",
        "issueDate": epoch_ms("2026-11-18"),
    }
    return [consultation, circular]


class History:
    """A BRDR register served from 127.0.0.1 and the tracker run against it, day by day."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.db = tmp_path / "h.db"
        self.config = tmp_path / "c.toml"
        self.fake = BrdrFake(records())
        self.config.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\n"
            '[sources.brdr]\ndoc_types = ["CIR", "CPR"]\n'
            "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
            "[sources.press_releases]\nenabled = false\n"
            f"{OTHER_REGULATORS_OFF}"
            f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n'
            '[[subscribers]]\nname = "policy"\nemails = ["policy@example.org"]\n'
            "calendar = true\n",
            encoding="utf-8",
        )

    def record(self, doc_id: str) -> dict:
        return next(r for r in self.fake.records if r["docId"] == doc_id)

    def run(self, pdf_lines: list[str]) -> None:
        with RecordedSite(self.tmp) as brdr:
            brdr.handlers[BrdrFake.path] = self.fake
            brdr.fallback = DocumentsFake()
            brdr.overrides[CIRCULAR_PDF] = Override(
                body=make_pdf(pdf_lines), content_type="application/pdf"
            )
            result = self.cli(
                "run", "--full-sweep", "--mirror", f"https://brdr.hkma.gov.hk={brdr.base_url}"
            )
        assert result.exit_code == 0, result.output

    def cli(self, *args: str):
        return CliRunner().invoke(cli, ["--config", str(self.config), "--db", str(self.db), *args])

    def lines(self, *args: str) -> list[dict]:
        result = self.cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]


def effective(day: date) -> list[str]:
    """The circular's lines, taking effect on `day` ("1 March 2027" as a circular writes it)."""
    return [line.replace("1 March 2026", f"{day.day} {day:%B %Y}") for line in CIRCULAR]


@pytest.fixture
def history(tmp_path):
    history = History(tmp_path)
    history.run(effective(EFFECTIVE_ON))
    return history


def calendar(history: History, name: str = "d.ics") -> tuple[bytes, dict[str, icalendar.Event]]:
    path = history.tmp / name
    result = history.cli("calendar", "--ics", str(path))
    assert result.exit_code == 0, result.output
    data = path.read_bytes()
    parsed = icalendar.Calendar.from_ical(data)
    events = {str(e["UID"]): e for e in parsed.walk("VEVENT")}
    # A second, independent parser reads the same events, dates and states.
    other = vobject.readOne(data.decode("utf-8"))
    assert {
        (v.uid.value, v.dtstart.value, v.sequence.value, v.status.value) for v in other.vevent_list
    } == {
        (uid, e.decoded("DTSTART"), str(int(e["SEQUENCE"])), str(e["STATUS"]))
        for uid, e in events.items()
    }
    return data, events


CLOSES = "Consultation closes: Consultation on enhancements to the Banking Ordinance"
OPENS = "Consultation opens: Consultation on enhancements to the Banking Ordinance"
TAKES_EFFECT = "Takes effect: Guidance on combating high-end money laundering"


def by_summary(events: dict[str, icalendar.Event]) -> dict[str, icalendar.Event]:
    return {str(e["SUMMARY"]): e for e in events.values()}


def test_deadlines_from_the_register_and_from_the_pdf(history):
    rows = history.lines("deadlines", "--days", "400")
    found = {(r["kind"], r["date"], r["document_id"]) for r in rows}
    assert found == {
        ("consultation closes", CLOSES_ON.isoformat(), f"brdr:doc:{CONSULTATION[:-3]}"),
        ("takes effect", EFFECTIVE_ON.isoformat(), f"brdr:doc:{CIRCULAR_ID[:-3]}"),
    }  # the consultation opened before today: not upcoming
    takes_effect = next(r for r in rows if r["kind"] == "takes effect")
    assert takes_effect["evidence"] == (
        f"The revised requirements will take effect on {EFFECTIVE_ON.day} {EFFECTIVE_ON:%B %Y}."
    )
    assert history.lines("deadlines", "--days", "60") == [
        r for r in rows if r["date"] <= (TODAY + timedelta(days=60)).isoformat()
    ]
    none = history.cli("deadlines", "--days", "400", "--function", "Fraud")
    assert none.exit_code == 0 and none.stderr.startswith("no deadline")
    wrong = history.cli("deadlines", "--function", "Nonsense")
    assert wrong.exit_code == 2 and "AML/CFT" in wrong.stderr  # names the known ones


def test_the_calendar_updates_rather_than_duplicates_and_cancels_what_no_longer_stands(history):
    data, first = calendar(history)
    assert b"\r\n" in data and all(len(line) <= 75 for line in data.split(b"\r\n"))  # folded
    events = by_summary(first)
    # The consultation paper's own PDF (the demo's stand-in) states a date of its own too.
    assert {CLOSES, OPENS, TAKES_EFFECT} <= set(events)
    closes = events[CLOSES]
    assert closes.decoded("DTSTART") == CLOSES_ON  # a date: all day
    assert int(closes["SEQUENCE"]) == 0 and str(closes["STATUS"]) == "CONFIRMED"
    assert {str(a.decoded("TRIGGER")) for a in closes.walk("VALARM")} == {
        "-30 days, 0:00:00",
        "-7 days, 0:00:00",
    }
    assert str(closes["URL"]).endswith(CONSULTATION)

    # Day 2: the consultation is extended. Same UIDs; the moved one's SEQUENCE goes up.
    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_TO)
    history.run(effective(EFFECTIVE_ON))
    _, second = calendar(history)
    assert set(second) == set(first)
    moved = by_summary(second)[CLOSES]
    assert moved.decoded("DTSTART") == EXTENDED_TO
    assert int(moved["SEQUENCE"]) == 1
    assert int(by_summary(second)[TAKES_EFFECT]["SEQUENCE"]) == 0

    # Day 3: the circular is superseded: its event is sent as cancelled, not dropped.
    history.record(CIRCULAR_ID)["supersessionDate"] = epoch_ms(TODAY)
    history.run(effective(EFFECTIVE_ON))
    _, third = calendar(history)
    assert set(third) == set(first)
    gone = by_summary(third)[TAKES_EFFECT]
    assert str(gone["STATUS"]) == "CANCELLED" and int(gone["SEQUENCE"]) == 1
    assert not list(gone.walk("VALARM"))
    assert "Cancelled: the document is superseded." in str(gone["DESCRIPTION"])
    upcoming = {(r["kind"], r["date"]) for r in history.lines("deadlines", "--days", "400")}
    assert upcoming == {("consultation closes", EXTENDED_TO.isoformat())}  # superseded: gone


def test_reviews_are_an_append_only_log_that_survives_retag_and_new_versions(history):
    assert history.lines("review", "list") == []  # the first reading is a baseline
    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_TO)
    history.run(effective(EFFECTIVE_ON))
    (change,) = history.lines("review", "list", "--open")
    assert change["state"] == "open" and change["document_id"].endswith(CONSULTATION[:-3])

    with run_lock(history.db):  # a run in progress does not keep an officer waiting
        first = history.cli(
            "review", "set", str(change["change_id"]), "in review", "--owner", "J. Chan"
        )
    assert first.exit_code == 0, first.output
    decided = history.lines(
        "review", "set", str(change["change_id"]), "actioned", "--owner", "J. Chan",
        "--note", "Response drafted; deadline in the team calendar",
    )  # fmt: skip
    assert decided[0]["state"] == "actioned"
    assert history.lines("review", "list", "--open") == []
    log = history.lines("review", "log", str(change["change_id"]))
    assert [r["state"] for r in log] == ["in review", "actioned"]

    with sqlite3.connect(history.db) as conn, pytest.raises(sqlite3.IntegrityError, match="append"):
        conn.execute("UPDATE reviews SET state = 'open'")
    with sqlite3.connect(history.db) as conn, pytest.raises(sqlite3.IntegrityError, match="append"):
        conn.execute("DELETE FROM reviews")

    assert history.cli("retag").exit_code == 0
    assert history.lines("review", "log", str(change["change_id"])) == log

    # A new version of the document opens a new review; the decided one stays decided.
    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_AGAIN)
    history.run(effective(EFFECTIVE_ON))
    reviews = {r["change_id"]: r["state"] for r in history.lines("review", "list")}
    assert reviews[change["change_id"]] == "actioned"
    assert list(reviews.values()).count("open") == 1
    oldest = history.lines("review", "list", "--limit", "1")  # a long queue, the oldest first
    assert [r["change_id"] for r in oldest] == [min(reviews)]

    baseline = (
        sqlite3.connect(history.db)
        .execute("SELECT id FROM changes WHERE baseline ORDER BY id LIMIT 1")
        .fetchone()[0]
    )
    for bad, why in (
        (["review", "set", "999999", "actioned"], "change 999999: no such change event"),
        (["review", "set", str(change["change_id"]), "done"], "'done' is not one of"),
        # The log refuses what `review set` refuses, rather than calling it "open".
        (["review", "log", "999999"], "change 999999: no such change event"),
        (["review", "log", str(baseline)], "first reading (baseline) needs no review"),
    ):
        result = history.cli(*bad)
        assert result.exit_code == 2 and why in result.output, result.output
    baseline = open_db(history.db).execute("SELECT min(id) FROM changes").fetchone()[0]
    result = history.cli("review", "set", str(baseline), "actioned")
    assert result.exit_code == 2 and "baseline" in result.output


def _set_finished(db_path, run_id: int, moment: str) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE source_runs SET finished_at = ? WHERE run_id = ?", [moment, run_id])
        conn.execute("UPDATE changes SET detected_at = ? WHERE run_id = ?", [moment, run_id])
        conn.execute(
            "UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?", [moment, moment, run_id]
        )


def test_the_report_shows_every_check_the_gap_and_every_decision(history, tmp_path):
    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_TO)
    history.run(effective(EFFECTIVE_ON))
    history.fake.failing_pages.add(("CIR", 1))  # the register fails: an unhealthy check
    with RecordedSite(tmp_path) as brdr:
        brdr.handlers[BrdrFake.path] = history.fake
        brdr.fallback = DocumentsFake()
        failed = history.cli("run", "--mirror", f"https://brdr.hkma.gov.hk={brdr.base_url}")
    assert failed.exit_code == 3, failed.output
    history.fake.failing_pages.clear()
    history.run(effective(EFFECTIVE_ON))
    change_id = history.lines("review", "list")[0]["change_id"]
    history.cli("review", "set", str(change_id), "not applicable", "--owner", "A. Wong",
                "--note", "We do not offer the product")  # fmt: skip

    # The checks, as an hourly weekday schedule would have made them on Monday 2026-11-23.
    runs = [r[0] for r in sqlite3.connect(history.db).execute("SELECT id FROM runs ORDER BY id")]
    times = ["2026-11-23T00:20:00+00:00", "2026-11-23T01:20:00+00:00",
             "2026-11-23T02:20:00+00:00", "2026-11-23T04:20:00+00:00"]  # fmt: skip
    for run_id, moment in zip(runs, times, strict=True):
        _set_finished(history.db, run_id, moment)

    report = json.loads(
        history.cli(
            "report", "--from", "2026-11-23", "--to", "2026-11-23", "--format", "json"
        ).stdout
    )
    (brdr_checks,) = report["sources"]
    assert (brdr_checks["checks"], brdr_checks["healthy"]) == (4, 3)
    assert "503" in brdr_checks["unhealthy"][0]["reason"], brdr_checks["unhealthy"]
    # The daily 02:00 HKT full sweep brought nothing healthy before the first check at 08:20;
    # healthy at 09:20 and 12:20 HKT: the 10:15 and 11:15 checks brought nothing healthy; and
    # no check came after 12:20, though seven more were scheduled (13:15 to 19:15).
    gaps = brdr_checks["gaps"]
    assert gaps == [
        {
            "from": "2026-11-22T16:00:00+00:00",
            "to": "2026-11-23T00:20:00+00:00",
            "missed": 1,
            "first_missed": "2026-11-23T02:00:00+08:00",
        },
        {
            "from": "2026-11-23T01:20:00+00:00",
            "to": "2026-11-23T04:20:00+00:00",
            "missed": 2,
            "first_missed": "2026-11-23T10:15:00+08:00",
        },
        {
            "from": "2026-11-23T04:20:00+00:00",
            "to": None,
            "missed": 7,
            "first_missed": "2026-11-23T13:15:00+08:00",
        },
    ]
    decided = next(c for c in report["changes"] if c["change_id"] == change_id)
    assert (decided["state"], decided["owner"], decided["note"]) == (
        "not applicable", "A. Wong", "We do not offer the product"
    )  # fmt: skip
    assert report["totals"]["gaps"] == len(gaps) >= 1
    assert report["coverage"]["watched"] == ["Banking Regulatory Document Repository: CIR, CPR"]
    assert any("other regulators" in line for line in report["coverage"]["not_watched"])

    rows = list(
        csv.DictReader(
            io.StringIO(
                history.cli(
                    "report", "--from", "2026-11-23", "--to", "2026-11-23", "--format", "csv"
                ).stdout
            )
        )
    )
    assert {r["section"] for r in rows} >= {
        "checks",
        "unhealthy check",
        "gap",
        "change",
        "deadline",
    }
    html = tmp_path / "q.html"
    made = history.cli(
        "report", "--from", "2026-11-23", "--to", "2026-11-23", "--output", str(html)
    )
    assert made.exit_code == 0 and "gaps" in made.stdout
    page = html.read_text(encoding="utf-8")
    assert "We do not offer the product" in page and "<script" not in page
    assert "2 scheduled checks without a healthy result" in page

    wrong = history.cli("report", "--from", "2026-11-30", "--to", "2026-11-23")
    assert wrong.exit_code == 2 and "before --from" in wrong.output


def test_gaps_follow_the_schedule_not_the_clock(tmp_path):
    """No healthy check from Friday evening to Monday morning is no gap on a weekday
    schedule; a missed Monday morning is; so are the nightly full sweeps, where they are
    scheduled and brought nothing."""
    db = open_db(tmp_path / "g.db", create=True)
    weekdays = tmp_path / "weekdays.toml"
    weekdays.write_text('[schedule]\nall = "15 8-19 * * mon-fri"\n', encoding="utf-8")
    config = load_config(weekdays)
    with db.conn:
        for run_id, moment, healthy in (
            (1, "2026-11-20T11:20:00+00:00", 1),  # Friday 19:20 HKT, the day's last check
            (2, "2026-11-23T00:20:00+00:00", 1),  # Monday 08:20 HKT, the first
            (3, "2026-11-23T03:20:00+00:00", 1),  # Monday 11:20: 09:15 and 10:15 missed
        ):
            db.execute(
                "INSERT INTO runs (id, command, started_at, finished_at, status) "
                "VALUES (?, 'run', ?, ?, 'ok')",
                [run_id, moment, moment],
            )
            db.execute(
                "INSERT INTO source_runs (run_id, source, healthy, reason, items, new, changed, "
                "removed, requests, bytes, stats, finished_at) "
                "VALUES (?, 'brdr', ?, '', 1, 0, 0, 0, 1, 1, '{}', ?)",
                [run_id, healthy, moment],
            )
    start = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    end = datetime(2026, 11, 23, 3, 30, tzinfo=UTC)
    brdr = next(c for c in source_checks(db, config, start, end) if c.source == "brdr")
    assert brdr.checks == 3
    assert [g["missed"] for g in brdr.gaps] == [2]
    assert brdr.gaps[0]["from"] == "2026-11-23T00:20:00+00:00"
    with_sweeps = load_config(None)  # the default adds a full sweep at 02:00 every day
    brdr = next(c for c in source_checks(db, with_sweeps, start, end) if c.source == "brdr")
    assert [(g["missed"], g["first_missed"]) for g in brdr.gaps] == [
        (3, "2026-11-21T02:00:00+08:00"),  # Saturday, Sunday and Monday 02:00
        (2, "2026-11-23T09:15:00+08:00"),
    ]


def test_a_real_browser_renders_the_report_and_prints_it_to_pdf(history, chromium, tmp_path):
    from pypdf import PdfReader

    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_TO)
    history.run(effective(EFFECTIVE_ON))
    change_id = history.lines("review", "list")[0]["change_id"]
    history.cli("review", "set", str(change_id), "actioned", "--note", "Response sent <b>late</b>")
    html = tmp_path / "report.html"
    made = history.cli(
        "report", "--from", "2026-11-01", "--to", TODAY.isoformat(), "--output", str(html)
    )
    assert made.exit_code == 0, made.output
    pdf = tmp_path / "report.pdf"
    headless_chromium(
        chromium, html, tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}"
    )
    reader = PdfReader(pdf)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) >= 1
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width), round(height)) == (595, 842)  # A4, as the page's @page asks
    for expected in (
        "attestation report",
        "Checks per source",
        "Banking Regulatory Document Repository",
        "Response sent <b>late</b>",  # escaped: printed as written, not as markup
        "Consultation on enhancements to the Banking Ordinance",
        "Deadlines from the period",
    ):
        assert expected in " ".join(text.split()), expected

    # On a phone (390 px) no table is wider than the screen: the widest element's right edge,
    # measured from the page's left, stays inside it.
    phone = tmp_path / "phone.html"
    phone.write_text(
        html.read_text(encoding="utf-8").replace("</body>", PHONE_WIDTH + "</body>"), "utf-8"
    )
    dom = headless_chromium(
        chromium, phone, tmp_path / "profile2", "--window-size=390,800", "--dump-dom"
    )
    assert int(re.search(r"<title>W(\d+)</title>", dom).group(1)) <= 390


# Sets the page 390 px wide and titles it with how far its widest element reaches.
PHONE_WIDTH = """<script>
document.body.style.cssText += "width:390px;max-width:390px;box-sizing:border-box;margin:0";
var reach = 0;
document.querySelectorAll("body *").forEach(function (e) {
  reach = Math.max(reach, e.getBoundingClientRect().right);
});
document.title = "W" + Math.round(reach);
</script>"""


def test_a_digest_says_what_is_still_open_and_brings_the_calendar_when_dates_moved(history):
    from email import message_from_bytes, policy

    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_TO)
    history.run(effective(EFFECTIVE_ON))
    (eml,) = sorted((history.tmp / "digests").glob("*-policy.eml"))
    email = message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = email.get_body(("plain",)).get_content()
    assert "Still to review in your scope: 1 change, the oldest open 0 days" in text
    (attached,) = list(email.iter_attachments())
    assert attached.get_filename() == "hkma-deadlines.ics"
    events = icalendar.Calendar.from_ical(attached.get_content()).walk("VEVENT")
    assert CLOSES in {str(e["SUMMARY"]) for e in events}


def test_a_calendar_or_report_that_cannot_be_written_is_one_line_naming_the_file(history):
    for args in (
        ["calendar", "--ics", str(history.tmp / "missing" / "d.ics")],
        ["report", "--from", "2026-11-01", "--to", "2026-11-30", "--output",
         str(history.tmp / "missing" / "r.html")],
    ):  # fmt: skip
        result = history.cli(*args)
        assert result.exit_code == 2, result.output
        assert "missing" in result.output and "cannot write" in result.output
        assert "Traceback" not in result.output


def test_the_report_escapes_hostile_text_and_links_only_to_the_web():
    from alerts.report import report_csv, report_html

    hostile = "<script>alert(1)</script>"
    change = {
        "change_id": 7, "detected_at": "2026-11-23T01:00:00+00:00", "kind": "new",
        "source": "rss", "regulator": hostile, "document_id": "rss:x", "title": hostile,
        "url": "javascript:alert(1)", "state": "open", "owner": hostile, "note": "=HYPERLINK(\"x\")", "reviewed_at": None,
        "functions": [hostile], "products": [],
    }  # fmt: skip
    report = {
        "period": {
            "from": "2026-11-23T00:00:00+00:00", "to": "2026-11-24T00:00:00+00:00",
            "checked_until": "2026-11-24T00:00:00+00:00", "over": True,
        },
        "generated_at": "2026-11-29T00:00:00+00:00",
        "filters": {},
        "coverage": {"watched": [hostile], "not_watched": []},
        "sources": [],
        "changes": [change],
        "deadlines": [],
        "untagged": [{**change, "functions": []}],
        "totals": {
            "checks": 0, "unhealthy_checks": 0, "gaps": 0, "changes": 1, "open": 1, "untagged": 1,
        },
    }  # fmt: skip
    page = report_html(report)
    unowned = {**change, "owner": None, "reviewed_at": "2026-12-02T04:27:00+00:00"}
    alone = report_html({**report, "changes": [unowned]})
    assert "<td>2026-12-02 12:27 HKT" in alone and ", 2026-12-02 12:27 HKT" not in alone
    assert "Binding instruments without a function tag" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="#"' in page and "javascript:" not in page
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [r["section"] for r in rows] == ["change", "untagged instrument"]
    assert rows[0]["title"] == hostile  # CSV carries text as it is
    assert rows[0]["note"] == '\'=HYPERLINK("x")'  # but never a formula a spreadsheet runs


def test_a_period_not_over_counts_no_future_check_and_says_so(tmp_path):
    from alerts.report import report_html

    db = open_db(tmp_path / "g.db", create=True)
    weekdays = tmp_path / "weekdays.toml"
    weekdays.write_text('[schedule]\nall = "15 8-19 * * mon-fri"\n', encoding="utf-8")
    config = load_config(weekdays)
    moment = "2026-12-02T01:20:00+00:00"  # Wednesday 09:20 HKT, healthy
    db.execute(
        "INSERT INTO runs (id, command, started_at, finished_at, status) "
        "VALUES (1, 'run', ?, ?, 'ok')",
        [moment, moment],
    )
    db.execute(
        "INSERT INTO source_runs (run_id, source, healthy, reason, items, new, changed, removed, "
        "requests, bytes, stats, finished_at) VALUES (1, 'brdr', 1, '', 1, 0, 0, 0, 1, 1, '{}', ?)",
        [moment],
    )
    db.conn.commit()
    december = datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC)
    now = datetime(2026, 12, 2, 4, 30, tzinfo=UTC)  # Wednesday 12:30 HKT
    report = attestation_report(db, config, *december, now=now)
    assert report["period"]["over"] is False
    assert report["period"]["checked_until"] == now.isoformat()
    (brdr,) = [s for s in report["sources"] if s["source"] == "brdr"]
    # From Tuesday 1 December: its 12 checks and Wednesday's 08:15 were missed; after 09:20
    # 10:15 and 11:15 have had their hour (the run deadline) by 12:30; 12:15 has not, and
    # nothing after 12:30 counts.
    assert [(g["missed"], g["to"]) for g in brdr["gaps"]] == [(13, moment), (2, None)]
    page = report_html(report)
    assert "Period not over: checks are counted up to" in page
    assert "the time of this report" in page
    january = datetime(2026, 12, 31, 16, tzinfo=UTC), datetime(2027, 1, 31, 16, tzinfo=UTC)
    ahead = attestation_report(db, config, *january, now=now)
    assert ahead["totals"]["gaps"] == 0 and ahead["totals"]["checks"] == 0


def test_a_calendar_with_a_broken_url_stays_valid():
    from alerts.calendar import CalendarEntry, calendar_bytes

    hostile = CalendarEntry(
        uid="x@hkma-tracker", day=date(2027, 1, 4), summary="Takes effect\r\nBEGIN:VEVENT",
        description="line one\nline two", url="https://brdr.hkma.gov.hk/x\nEND:VCALENDAR",
    )  # fmt: skip
    ics = calendar_bytes([hostile], "HKMA deadlines")
    parsed = icalendar.Calendar.from_ical(ics)
    (event,) = parsed.walk("VEVENT")
    assert str(event["summary"]).endswith("BEGIN:VEVENT")  # escaped text: still one event
    assert "url" not in event  # a URL that is not clean is left out, not written raw
    assert ics.count(b"END:VCALENDAR") == 1


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("\n=1+1", "'\n=1+1"),
        ("  =1+1", "'  =1+1"),  # blanks first: still a formula to a spreadsheet
        ("＝1+1", "'＝1+1"),  # a fullwidth sign some normalise
        ("-5 days", "'-5 days"),
        ("Plain note", "Plain note"),
        (7, 7),
    ],
)
def test_spreadsheet_cells_never_start_a_formula(cell, safe):
    from alerts.report import spreadsheet_safe

    assert spreadsheet_safe(cell) == safe


def test_a_cell_longer_than_a_spreadsheet_holds_is_cut_saying_so():
    from alerts.report import CELL_LIMIT, spreadsheet_safe

    cut = spreadsheet_safe("x" * 1_000_000)
    assert len(cut) == CELL_LIMIT and cut.endswith("[cut: see the JSON or HTML report]")


def test_a_review_note_cannot_pass_for_another_review(capsys):
    from tracker.render import review_rows

    forged = "Fine\n2026-12-02 12:00 HKT  actioned by The Auditor"
    review_rows(
        [{"at": "2026-12-02T01:00:00+00:00", "state": "open", "owner": "J", "note": forged}],
        as_json=False,
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("    2026-12-02 12:00 HKT")  # indented under its own review


def test_review_set_waits_its_turn_while_a_run_holds_the_database(history):
    import threading
    import time

    history.record(CONSULTATION)["consultClsDate"] = epoch_ms(EXTENDED_TO)
    history.run(effective(EFFECTIVE_ON))
    change_id = history.lines("review", "list")[-1]["change_id"]
    held = threading.Event()

    def long_write():  # a run's transaction, longer than the busy timeout
        conn = sqlite3.connect(history.db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(12)
        conn.execute("COMMIT")
        conn.close()

    writer = threading.Thread(target=long_write)
    writer.start()
    held.wait(5)
    result = history.cli("review", "set", str(change_id), "in review", "--owner", "J. Chan")
    writer.join()
    assert result.exit_code == 0, result.output  # stored, not exit 75
    assert [r["state"] for r in history.lines("review", "log", str(change_id))][-1] == "in review"
