"""A rule's whole life on a loopback BRDR: the first run records the whole multi-year register,
a new version of an old SPM module is a change, supersessions are marked the day they appear,
documents gone from the register are looked up, and nothing is marked from a broken sweep.

The register is brdr-records.json (tests/fixtures/README.md) with half of its 2025 circulars
and the CR-G-7 module re-dated to 2019-2024 (same month and day), so that it spans years that
an incremental (THIS_YEAR) query cannot see, served three records a page.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from conftest import OTHER_REGULATORS_OFF

from storage.records import Snapshot, StoredDocument
from tracker.cli import cli
from tracker.config import HealthSettings
from tracker.demo_apis import BrdrFake, load
from tracker.detect import ListingHistory, plan_source
from tracker.lifecycle import announce_supersessions, left_register, settle_departures
from tracker.loopback import RecordedSite
from tracker.sweep import Sweep, choose_sweep

HK = timezone(timedelta(hours=8))
SEARCH = "https://brdr.hkma.gov.hk/restapi/doc-search"
THIS_YEAR = 2026  # the fake's THIS_YEAR


def redate(record: dict, day: date, number: int | None = None) -> dict:
    """`record` issued on `day` (HK), with the docId BRDR would give it."""
    moved = copy.deepcopy(record)
    n = number if number is not None else int(record["docId"].split("-")[1])
    doc_id = f"{day:%Y%m%d}-{n}"
    midnight = datetime(day.year, day.month, day.day, tzinfo=HK)
    moved.update(
        docId=f"{doc_id}-EN",
        engDocId=f"{doc_id}-EN",
        chiDocId=f"{doc_id}-TC",
        issueDateStr=day.strftime("%d %b %Y"),
        issueDate=int(midnight.timestamp() * 1000),
    )
    return moved


def register() -> list[dict]:
    records = []
    for i, record in enumerate(load("brdr-records.json")):
        issued = datetime.strptime(record["issueDateStr"], "%d %b %Y").date()
        if record.get("spmCode") == "CR-G-7":
            record = redate(record, issued.replace(year=2019))
        elif record["docTypeCode"] == "CIR" and issued.year == 2025 and i % 2 == 0:
            record = redate(record, issued.replace(year=2019 + (i // 2) % 6))
        records.append(record)
    return records


def by_id(fake: BrdrFake, doc_id: str) -> dict:
    return next(r for r in fake.records if r["docId"] == doc_id)


@pytest.fixture
def fake():
    return BrdrFake(register())


@pytest.fixture
def brdr(tmp_path, fake):
    """Runs the CLI against the fake: `brdr(*args, doc_types=...)` -> the CliRunner result."""
    db = tmp_path / "h.db"
    with RecordedSite(tmp_path) as site:
        site.handlers[BrdrFake.path] = fake
        site.fallback = fake.landing

        def invoke(*args, doc_types=("CIR", "GLI", "SPM"), settings=""):
            config = tmp_path / "c.toml"
            config.write_text(
                "[crawl]\ndownload_delay = 0\nretries = 0\n"
                "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
                "[sources.press_releases]\nenabled = false\n[documents]\nenabled = false\n"
                f"{OTHER_REGULATORS_OFF}"
                f"[sources.brdr]\npage_size = 3\ndoc_types = {json.dumps(list(doc_types))}\n"
                f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n{settings}',
                encoding="utf-8",
            )
            mirror = f"https://brdr.hkma.gov.hk={site.base_url}"
            base = ["--config", str(config), "--db", str(db)]
            if args and args[0] in ("run", "crawl"):
                args = (*args, "--mirror", mirror)
            return CliRunner().invoke(cli, [*base, *args])

        invoke.db = db
        yield invoke


def query(db, sql, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def events(db, run_id=None):
    """{document id: (kind, changed fields, baseline)} of one run (default: the last)."""
    run_id = run_id or query(db, "SELECT max(id) FROM runs")[0][0]
    return {
        doc: (kind, json.loads(fields), bool(baseline))
        for doc, kind, fields, baseline in query(
            db,
            "SELECT document_id, kind, fields, baseline FROM changes WHERE run_id = ?",
            run_id,
        )
    }


def extra(db, doc_id):
    return json.loads(query(db, "SELECT extra FROM documents WHERE id = ?", doc_id)[0][0])


def date_groups(fake):
    return {
        c["valueList"][0]
        for b in fake.bodies
        for c in b["docSrchCriteriaDtoList"]
        if c["fieldCode"] == "issueDateGrp"
    }


def current_keys(fake, doc_types=("CIR", "GLI", "SPM")):
    return {
        f"brdr:spm:{r['spmCode']}" if r.get("spmCode") else f"brdr:doc:{r['docId'][:-3]}"
        for r in fake.records
        if r["versionCode"] == "Current" and r["docTypeCode"] in doc_types
    }


# --- whole runs -------------------------------------------------------------------------------


def test_the_first_run_records_the_whole_register_as_baseline(brdr, fake):
    years = {int(r["issueDateStr"][-4:]) for r in fake.records}
    assert {1996, 1997, *range(2019, THIS_YEAR + 1)} <= years

    first = brdr("run")

    assert first.exit_code == 0, first.output
    assert "brdr: full sweep (no baseline yet)" in first.output
    assert date_groups(fake) == {"ALL"}
    pages = {t: len(fake.pages(t)) for t in ("CIR", "GLI", "SPM")}
    # 3 records a page, read until a short page (SPM's nine fill three: a fourth, empty)
    assert pages == {"CIR": 35, "GLI": 2, "SPM": 4}
    stored = {doc for (doc,) in query(brdr.db, "SELECT id FROM documents")}
    assert stored == current_keys(fake) and len(stored) == 117
    assert all(baseline for _, _, baseline in events(brdr.db).values())
    assert query(brdr.db, "SELECT count(*) FROM listings WHERE last_full_at IS NULL") == [(0,)]
    assert query(brdr.db, "SELECT sweep FROM source_runs") == [("full",)]

    fake.bodies.clear()
    second = brdr("run")
    assert second.exit_code == 0 and "brdr: incremental" in second.output
    assert date_groups(fake) == {"THIS_YEAR"}
    assert events(brdr.db) == {}
    runs = brdr("runs").output
    assert runs.count(", incremental sweep") == 1 and runs.count(", full sweep") == 1
    assert "None s" not in runs  # each source's crawl time is known


def test_a_new_version_of_an_old_module_and_a_supersession_in_one_incremental_run(brdr, fake):
    brdr("run")
    old_module = next(r for r in fake.records if r.get("spmCode") == "CR-G-7")
    assert old_module["issueDateStr"].endswith("2019")
    module = redate(old_module, date(THIS_YEAR, 10, 20), 70)
    module["versionHistoryDocList"] = [{"docId": old_module["docId"]}]
    old_module["versionCode"] = "Archive"
    old_circular = by_id(fake, "20211212-1-EN")
    circular = redate(old_circular, date(THIS_YEAR, 11, 2), 4)
    circular.update(
        docLongTitle="Revised guidance on sanctions screening",
        supersededDocList=[{"docId": old_circular["docId"]}],
    )
    old_circular["versionCode"] = "Archive"
    fake.records += [module, circular]
    fake.bodies.clear()

    day2 = brdr("run")

    assert day2.exit_code == 0, day2.output
    assert date_groups(fake) == {"THIS_YEAR"}
    assert events(brdr.db) == {
        "brdr:spm:CR-G-7": (
            "changed",
            [
                "date",
                "extra.doc_id",
                "extra.document_url",
                "extra.version",
                "extra.version_history",
                "url",
            ],
            False,
        ),
        "brdr:doc:20261102-4": ("new", [], False),
        "brdr:doc:20211212-1": (
            "changed",
            ["extra.status", "extra.superseded_by", "extra.supersession_date"],
            False,
        ),
    }
    assert (
        extra(brdr.db, "brdr:doc:20211212-1").items()
        >= {
            "status": "superseded",
            "supersession_date": "2026-11-02",
            "superseded_by": {
                "id": "brdr:doc:20261102-4",
                "doc_id": "20261102-4-EN",
                "title": "Revised guidance on sanctions screening",
                "url": "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20261102-4-EN",
            },
        }.items()
    )
    assert query(
        brdr.db,
        "SELECT significance FROM changes WHERE document_id = 'brdr:doc:20211212-1' "
        "AND kind = 'changed'",
    ) == [("substantive",)]
    assert fake.landings == []  # the record said it all: nothing to look up

    # The daily sweep that follows no longer lists the old circular: already marked, quiet.
    sweep = brdr("run", "--full-sweep")
    assert sweep.exit_code == 0 and events(brdr.db) == {}
    assert fake.landings == []

    lines = brdr("rule", "spm:CR-G-7", "--json").output.splitlines()
    timeline = [e for e in map(json.loads, lines) if e["type"] == "entry"]
    assert [(e["entry"], e["detail"]) for e in timeline if e["entry"] in ("issued", "revised")] == [
        ("issued", "version 20190411-52"),
        ("revised", "version 20190411-52 -> 20261020-70"),
    ]
    old = brdr("rule", "brdr:20211212-1")
    assert "superseded    " in old.output
    assert "superseded by Revised guidance on sanctions screening (20261102-4-EN)" in old.output
    assert (
        "superseded by Revised guidance on sanctions screening (20261102-4-EN)"
        in brdr("history", "brdr:doc:20211212-1").output
    )
    new = brdr("rule", "brdr:20261102-4")
    assert "replaces" in new.output and "(20211212-1-EN)" in new.output

    digest = max((brdr.db.parent / "digests").glob("*.txt"))
    text = digest.read_text(encoding="utf-8")
    assert "Superseded by Revised guidance on sanctions screening (20261102-4-EN)" in text


def test_a_full_sweep_looks_up_what_left_the_register(brdr, fake):
    brdr("run")
    # Archived with a newer version its landing page names (nothing current names it).
    replaced, successor = by_id(fake, "20221010-2-EN"), by_id(fake, "20260527-4-EN")
    replaced["versionCode"] = "Archive"
    replaced["versionHistoryDocList"] = [{"docId": successor["docId"]}]
    # Archived with nothing related, and gone altogether (its landing page answers 404).
    lone = by_id(fake, "20230319-1-EN")
    lone["versionCode"] = "Archive"
    fake.records.remove(gone := by_id(fake, "20240416-1-EN"))

    incremental = brdr("run")
    assert incremental.exit_code == 0 and events(brdr.db) == {}  # a slice proves nothing
    sweep = brdr("run", "--full-sweep")

    assert sweep.exit_code == 0, sweep.output
    today = datetime.now(HK).date().isoformat()
    assert events(brdr.db) == {
        doc: ("changed", fields, False)
        for doc, fields in [
            (
                "brdr:doc:20221010-2",
                [
                    "extra.left_register_on",
                    "extra.status",
                    "extra.superseded_by",
                    "extra.supersession_date",
                ],
            ),
            ("brdr:doc:20230319-1", ["extra.left_register_on", "extra.status"]),
            ("brdr:doc:20240416-1", ["extra.left_register_on", "extra.status"]),
        ]
    }
    assert sorted(fake.landings) == [
        f"/eng/doc-ldg/docId/{r['docId']}" for r in (replaced, lone, gone)
    ]
    assert extra(brdr.db, "brdr:doc:20221010-2")["superseded_by"]["id"] == "brdr:doc:20260527-4"
    assert extra(brdr.db, "brdr:doc:20221010-2")["supersession_date"] == "2026-05-27"
    for doc in ("brdr:doc:20230319-1", "brdr:doc:20240416-1"):
        assert (
            extra(brdr.db, doc).items()
            >= {
                "status": "withdrawn",
                "left_register_on": today,
            }.items()
        )
    # Marked, never removed: the history keeps every version.
    assert query(brdr.db, "SELECT count(*) FROM documents WHERE status != 'active'") == [(0,)]

    fake.landings.clear()
    again = brdr("run", "--full-sweep")
    assert again.exit_code == 0 and events(brdr.db) == {} and fake.landings == []

    # Listed among the current records again: current again.
    lone["versionCode"] = "Current"
    back = brdr("run", "--full-sweep")
    assert back.exit_code == 0
    assert events(brdr.db) == {
        "brdr:doc:20230319-1": ("changed", ["extra.left_register_on", "extra.status"], False)
    }
    assert extra(brdr.db, "brdr:doc:20230319-1")["status"] == "current"


def test_many_withdrawals_in_one_sweep_are_held_for_the_operator(brdr, fake):
    """A register that quietly serves fewer records (a drop too small for the drop check) must
    not withdraw current rules wholesale: more than the cap in one sweep is held, the run is
    unhealthy and the operator is told once; a sweep with the operator's leave applies them."""
    cap = "[health]\nmax_withdrawals_per_sweep = 3\n"
    assert brdr("run", settings=cap).exit_code == 0
    # One is archived with a newer version its landing page names: that is evidence.
    replaced, successor = by_id(fake, "20221010-2-EN"), by_id(fake, "20260527-4-EN")
    circulars = [
        r for r in fake.records if r["docTypeCode"] == "CIR" and r not in (replaced, successor)
    ]
    gone = circulars[10:15]  # 5 of 104: far under the 50% drop check
    for record in gone:
        fake.records.remove(record)
    replaced["versionCode"] = "Archive"
    replaced["versionHistoryDocList"] = [{"docId": successor["docId"]}]

    held = brdr("run", "--full-sweep", settings=cap)

    assert held.exit_code == 3, held.output
    assert "5 current documents left the register in one sweep" in held.output
    assert "--accept-withdrawals" in held.output
    assert events(brdr.db) == {
        "brdr:doc:20221010-2": (
            "changed",
            [
                "extra.left_register_on",
                "extra.status",
                "extra.superseded_by",
                "extra.supersession_date",
            ],
            False,
        )
    }
    assert query(
        brdr.db, "SELECT count(*) FROM documents WHERE extra ->> '$.status' = 'withdrawn'"
    ) == [(0,)]
    alerts = query(
        brdr.db,
        "SELECT subject, eml FROM messages WHERE subscriber = 'operator' "
        "AND kind = 'withdrawals-held'",
    )
    assert len(alerts) == 1
    subject, eml = alerts[0]
    assert "brdr" in subject and "5" in subject
    body = eml.decode() if isinstance(eml, bytes) else eml
    for record in gone:
        assert record["docId"].removesuffix("-EN") in body

    again = brdr("run", "--full-sweep", settings=cap)
    assert again.exit_code == 3
    assert query(brdr.db, "SELECT count(*) FROM messages WHERE kind = 'withdrawals-held'") == [
        (1,)
    ]  # told once, not at every sweep

    accepted = brdr("run", "--full-sweep", "--accept-withdrawals", settings=cap)
    assert accepted.exit_code == 0, accepted.output
    assert set(events(brdr.db)) == {"brdr:doc:" + r["docId"].removesuffix("-EN") for r in gone}
    assert query(
        brdr.db, "SELECT count(*) FROM documents WHERE extra ->> '$.status' = 'withdrawn'"
    ) == [(5,)]


def test_an_unhealthy_sweep_marks_nothing(brdr, fake):
    brdr("run")
    fake.records.remove(by_id(fake, "20230319-1-EN"))  # a circular of 2023 leaves
    spm = [r for r in fake.records if r["docTypeCode"] == "SPM"]
    for record in spm[4:]:  # and the SPM listing shrinks from 9 to 4: a sharp drop
        fake.records.remove(record)
    fake.failing_pages.add(("CIR", 3))

    sweep = brdr("run", "--full-sweep")

    assert sweep.exit_code == 3, sweep.output
    assert "HTTP 503 (page 3)" in sweep.output and "sharp drop: 4 items" in sweep.output
    assert events(brdr.db) == {} and fake.landings == []

    # Circulars read whole and healthy, but another listing failed: a document may have moved
    # there, so nothing counts as gone yet.
    fake.records += spm[4:]
    fake.failing_pages = {("GLI", 1)}
    partly = brdr("run", "--full-sweep")
    assert partly.exit_code == 3 and events(brdr.db) == {} and fake.landings == []
    statuses = {
        s for (s,) in query(brdr.db, "SELECT json_extract(extra, '$.status') FROM documents")
    }
    assert statuses == {"current"}

    fake.failing_pages.clear()
    healthy = brdr("run", "--full-sweep")
    assert healthy.exit_code == 0
    assert events(brdr.db) == {
        "brdr:doc:20230319-1": ("changed", ["extra.left_register_on", "extra.status"], False)
    }


def test_a_run_after_a_gap_longer_than_the_window_sweeps_whole(brdr, fake):
    brdr("run")
    last_year = datetime(THIS_YEAR - 1, 12, 30, 2, tzinfo=UTC).isoformat()
    with sqlite3.connect(brdr.db) as conn:
        conn.execute("UPDATE listings SET last_healthy_at = ?", [last_year])
    # Issued over New Year, while the tracker was off: THIS_YEAR would no longer show it.
    late = redate(by_id(fake, "20240416-1-EN"), date(THIS_YEAR - 1, 12, 31), 2)
    late["docLongTitle"] = "Year-end arrangements"
    fake.records.append(late)
    fake.bodies.clear()

    after = brdr("run")

    assert after.exit_code == 0, after.output
    assert (
        f"brdr: full sweep (last healthy run {THIS_YEAR - 1}-12-30 is before the THIS_YEAR window)"
        in after.output
    )
    assert date_groups(fake) == {"ALL"}
    assert events(brdr.db) == {"brdr:doc:20251231-2": ("new", [], False)}  # news, not baseline


def test_a_new_document_type_is_swept_whole_alone(brdr, fake):
    brdr("run", doc_types=("CIR", "SPM"))
    fake.bodies.clear()

    more = brdr("run", "--json", doc_types=("CIR", "SPM", "GLI"))

    summary = json.loads(more.output.splitlines()[0])
    assert summary["sweep"] == "mixed"
    assert summary["sweep_reason"] == "full sweep of GLI (no baseline yet), incremental otherwise"
    groups = {b["docSrchCriteriaDtoList"][0]["valueList"][0]: b for b in fake.bodies}
    assert {t: json.dumps(b).count('"ALL"') for t, b in groups.items()} == {
        "CIR": 0,
        "SPM": 0,
        "GLI": 1,
    }
    assert {doc: baseline for doc, (_, _, baseline) in events(brdr.db).items()} == {
        doc: True for doc in current_keys(fake, ("GLI",))
    }


# --- pure decisions -------------------------------------------------------------------------

NOW = datetime(2026, 11, 29, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "requested", "expected"),
    [
        (None, False, Sweep(True, "no baseline yet")),
        (
            {"last_healthy_at": "2026-11-28T03:00:00+00:00"},
            False,
            Sweep(True, "no baseline yet", "2026-01-01"),
        ),
        (
            {
                "last_healthy_at": "2026-11-28T03:00:00+00:00",
                "last_full_at": "2026-11-20T00:00:00+00:00",
            },
            False,
            Sweep(False),
        ),
        (
            {
                "last_healthy_at": "2026-11-28T03:00:00+00:00",
                "last_full_at": "2026-11-20T00:00:00+00:00",
            },
            True,
            Sweep(True, "requested"),
        ),
        # 2025-12-31T17:00Z is already New Year's Day in Hong Kong: inside the window.
        (
            {
                "last_healthy_at": "2025-12-31T17:00:00+00:00",
                "last_full_at": "2025-12-01T00:00:00+00:00",
            },
            False,
            Sweep(False),
        ),
        (
            {
                "last_healthy_at": "2025-12-31T15:00:00+00:00",
                "last_full_at": "2025-12-01T00:00:00+00:00",
            },
            False,
            Sweep(True, "last healthy run 2025-12-31 is before the THIS_YEAR window"),
        ),
    ],
)
def test_choose_sweep(state, requested, expected):
    assert choose_sweep(state, NOW, requested, "THIS_YEAR") == expected


def test_the_first_full_read_after_incremental_ones_alerts_only_what_they_could_have_seen():
    items = [
        {
            "listing": SEARCH,
            "key": key,
            "title": key,
            "url": key,
            "date": day,
            "text": "",
            "extra": {},
        }
        for key, day in (("old", "2024-03-01"), ("fresh", "2026-11-02"), ("undated", None))
    ]
    result = {
        "outcomes": [
            {"listing": SEARCH, "ok": True, "reason": "", "items": 3, "removals_allowed": False}
        ],
        "items": items,
    }
    history = {SEARCH: ListingHistory(40, None, "2026-01-01")}
    plan = plan_source(
        "brdr",
        result,
        [SEARCH],
        {},
        history,
        HealthSettings(max_drop_ratio=0.5, min_items_for_drop_check=5, max_undated_share=0.5),
    )
    assert {e.document_id: e.baseline for e in plan.events} == {
        "brdr:old": True,
        "brdr:fresh": False,
        "brdr:undated": False,
    }


def snapshot(doc_id, day, **extra):
    return Snapshot(
        f"Title {doc_id}",
        f"https://brdr.hkma.gov.hk/eng/doc-ldg/docId/{doc_id}",
        day,
        "",
        {"doc_id": doc_id, "status": "current", **extra},
    )


def stored(doc, listing=SEARCH + "#CIR", **extra):
    snap = snapshot(*doc, **extra)
    return StoredDocument(f"brdr:doc:{doc[0][:-3]}", listing, "active", snap.content_hash(), snap)


def test_an_older_record_naming_a_newer_version_supersedes_nothing():
    old, new = stored(("20240101-1-EN", "2024-01-01")), stored(("20260101-1-EN", "2026-01-01"))
    held = {d.id: d for d in (old, new)}
    for listed, other in ((old, new), (new, old)):
        plan = plan_source("brdr", None, [], held, {}, HealthSettings())
        plan.seen[listed.id] = (
            SEARCH + "#CIR",
            snapshot(
                *("20240101-1-EN", "2024-01-01")
                if listed is old
                else ("20260101-1-EN", "2026-01-01"),
                version_history=[other.snapshot.extra["doc_id"]],
            ),
        )
        announce_supersessions(plan, held)
        marked = {e.document_id for e in plan.events}
        assert marked == (set() if listed is old else {old.id})


def test_departures_without_a_lookup_wait_for_the_next_sweep():
    doc = stored(("20240101-1-EN", "2024-01-01"))
    plan = plan_source(
        "brdr",
        {
            "outcomes": [
                {
                    "listing": SEARCH + "#CIR",
                    "ok": True,
                    "reason": "",
                    "items": 0,
                    "removals_allowed": False,
                }
            ],
            "items": [],
        },
        [SEARCH + "#CIR"],
        {doc.id: doc},
        {},
        HealthSettings(max_drop_ratio=0.5, min_items_for_drop_check=5, max_undated_share=0.5),
    )
    departed = left_register(plan, {doc.id: doc})
    assert departed == [doc]
    settle_departures(plan, {doc.id: doc}, departed, {}, "2026-11-29")
    assert plan.events == [] and plan.restated == {}


def test_a_full_sweep_that_keeps_failing_is_reported_although_incremental_runs_are_healthy(
    brdr, fake, tmp_path
):
    brdr("run")
    with sqlite3.connect(brdr.db) as conn:  # as if every sweep since had failed
        conn.execute("UPDATE listings SET last_full_at = '2026-01-01T02:00:00+00:00'")
    config = tmp_path / "ops.toml"
    config.write_text(
        (tmp_path / "c.toml").read_text(encoding="utf-8")
        + '[operator]\nemails = ["ops@example.com"]\n',
        encoding="utf-8",
    )
    ops = ["--config", str(config), "--db", str(brdr.db)]

    status = CliRunner().invoke(cli, [*ops, "status", "--json"])
    (row,) = [r for r in map(json.loads, status.stdout.splitlines()) if r.get("source") == "brdr"]
    assert row["overdue"] == (
        "no healthy full sweep of CIR since 2026-01-01 02:00 UTC "
        "(scheduled 0 2 * * * (sweep:full) Hong Kong time)"
    )
    for _ in range(2):  # told once
        assert CliRunner().invoke(cli, [*ops, "alerts", "check"]).exit_code == 0
    alerts = lambda: sorted((tmp_path / "digests").glob("*-operator.eml"))  # noqa: E731
    assert len(alerts()) == 1
    assert "no healthy full sweep of CIR" in alerts()[0].read_text(encoding="utf-8")

    # A healthy incremental run does not make it "recovered"; a healthy full sweep does.
    assert brdr("run").exit_code == 0
    assert CliRunner().invoke(cli, [*ops, "alerts", "check"]).exit_code == 0
    assert len(alerts()) == 1
    assert brdr("run", "--full-sweep").exit_code == 0
    assert CliRunner().invoke(cli, [*ops, "alerts", "check"]).exit_code == 0
    assert len(alerts()) == 2 and "recovered" in alerts()[1].read_text(encoding="utf-8").lower()


def test_a_failed_first_run_is_not_yet_an_operator_alert(brdr, fake, tmp_path):
    fake.failing_pages.add(("CIR", 1))
    assert brdr("run").exit_code == 3
    # One failed run is not `unhealthy_runs` (3) in a row; the sweep check waits for a baseline.
    assert list((tmp_path / "digests").glob("*operator*")) == []
