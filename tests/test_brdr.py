"""BRDR doc-search: dates, titles, pairing and supersession as functions; paging, versions and
supersessions through real crawls of a loopback fake of the API."""

from __future__ import annotations

import copy
import json
import sqlite3

import pytest
from conftest import OTHER_REGULATORS_OFF

from spiders.brdr import document_items, hong_kong_date, search_body, strip_markup
from tracker.config import load_config
from tracker.demo_apis import BrdrFake, load
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run

API = "https://brdr.hkma.gov.hk/restapi/doc-search"


@pytest.mark.parametrize(
    ("record", "day"),
    [
        ({"issueDateStr": "28 Apr 2025", "issueDate": 1745769600000}, "2025-04-28"),
        ({"issueDate": 1745769600000}, "2025-04-28"),  # 2025-04-27T16:00Z is HK midnight
        ({"issueDate": "2025-04-27T16:00:00.000+00:00"}, "2025-04-28"),
        ({"issueDate": "2025-04-27T16:00:00Z"}, "2025-04-28"),
        ({"issueDate": "2025-04-27T16:00:00"}, "2025-04-28"),
        ({"issueDate": None}, None),
        ({"issueDate": "soon"}, None),
    ],
)
def test_issue_dates_are_hong_kong_dates(record, day):
    assert hong_kong_date(record) == day


def test_titles_lose_their_markup():
    assert strip_markup("Main title<br/>Annex: Arrangement &amp; timing") == (
        "Main title Annex: Arrangement & timing"
    )


def test_search_body_has_the_documented_shape():
    body = search_body("SPM", 2, 100, "eng", "ALL", "CURRENT")
    assert body["pageNumber"] == "2" and body["pageSize"] == "100"
    assert body["docSrchCriteriaDtoList"][0] == {"fieldCode": "docType", "valueList": ["SPM"]}


def record(doc_id, title="T", **fields):
    return {"docId": doc_id, "docLongTitle": title, "issueDateStr": "01 Jan 2026", **fields}


def test_ids_lose_control_characters_wherever_they_land():
    english = [
        record("20260101-1-EN\nBCC: x", "Lying", supersededDocList=[{"docId": "2025\r0101-1-EN"}])
    ]
    (item,) = document_items(API + "#CIR", english, [])
    assert item.extra["doc_id"] == "20260101-1-ENBCC: x"
    assert not any(c in item.url + item.extra["document_url"] for c in "\r\n\t")
    assert item.extra["supersedes"] == ["20250101-1-EN"]


def test_versions_share_a_document_and_chinese_records_are_paired():
    english = [
        record("20260609-63-EN", "SPM IC-6 (2026)", spmCode="IC-6", docTypeCode="SPM"),
        record("20240101-9-EN", "SPM IC-6 (2024)", spmCode="IC-6", docTypeCode="SPM"),
        record("20250428-3-EN", "Sandbox", supersededDocList=[{"docId": "20240101-2-EN"}]),
        record("20240101-2-EN", "Old sandbox"),
    ]
    chinese = [record("20250428-3-TC", "生成式人工智能沙盒")]
    items = {i.key: i for i in document_items(API + "#CIR", english, chinese)}
    assert list(items) == ["spm:IC-6", "doc:20250428-3", "doc:20240101-2"]
    assert items["spm:IC-6"].extra["version"] == "20260609-63"  # newest first wins
    assert items["doc:20250428-3"].extra["chinese"] == {
        "doc_id": "20250428-3-TC",
        "title": "生成式人工智能沙盒",
    }
    # What the records name is kept for the tracker, which holds what a query leaves out.
    assert items["doc:20250428-3"].extra["supersedes"] == ["20240101-2-EN"]
    assert items["doc:20240101-2"].extra["status"] == "current"
    assert items["doc:20250428-3"].extra["status"] == "current"
    assert (
        items["doc:20250428-3"]
        .extra["document_url"]
        .endswith("/getPdf/20250428-3-EN/20250428-3-EN.pdf")
    )


@pytest.fixture
def fake():
    return BrdrFake(load("brdr-records.json"))


@pytest.fixture
def brdr_config(tmp_path, fake):
    def make(**brdr):
        with_defaults = {"page_size": 20, "doc_types": ["CIR", "SPM", "GLI"], **brdr}
        lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in with_defaults.items())
        path = tmp_path / "brdr.toml"
        path.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\n"
            "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
            "[sources.press_releases]\nenabled = false\n[documents]\nenabled = false\n"
            f"{OTHER_REGULATORS_OFF}"
            f"[sources.brdr]\n{lines}\n"
            f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n',
            encoding="utf-8",
        )
        return load_config(path, [f"https://brdr.hkma.gov.hk={site.base_url}"])

    with RecordedSite(tmp_path) as site:
        site.handlers[BrdrFake.path] = fake
        yield make


def documents(db_path):
    with sqlite3.connect(db_path) as conn:
        return {
            doc: json.loads(extra)
            for doc, extra in conn.execute("SELECT id, extra FROM documents WHERE source = 'brdr'")
        }


def test_a_full_sweep_pages_through_every_result(brdr_config, fake, db_path):
    report = run(brdr_config(), db_path, full_sweep=True)
    assert report.exit_status == ExitStatus.OK
    assert fake.pages("CIR") == [("eng", n) for n in range(1, 7)]  # 104 circulars, 20 a page
    docs = documents(db_path)
    assert sum(1 for d in docs.values() if d["doc_type"] == "CIR") == 104
    assert sum(1 for d in docs.values() if d["doc_type"] == "SPM") == 9
    ic6 = docs["brdr:spm:IC-6"]
    assert ic6["spm_code"] == "IC-6" and ic6["topics"] == ["Supervisory Policy Manual"]
    sandbox = docs["brdr:doc:20250428-3"]
    assert sandbox["document_url"] == (
        "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/getPdf/20250428-3-EN/20250428-3-EN.pdf"
    )
    with sqlite3.connect(db_path) as conn:
        title, date = conn.execute(
            "SELECT title, date FROM documents WHERE id = 'brdr:doc:20250428-3'"
        ).fetchone()
    assert title.startswith("Generative Artificial Intelligence Sandbox: Second Cohort Annex: ")
    assert date == "2025-04-28"


def test_new_versions_and_supersessions_are_named_changes(brdr_config, fake, db_path):
    config = brdr_config()
    run(config, db_path, full_sweep=True)
    ic6 = next(r for r in fake.records if r.get("spmCode") == "IC-6")
    new_version = copy.deepcopy(ic6)
    new_version.update(docId="20261020-70-EN", issueDateStr="20 Oct 2026", issueDate=1792425600000)
    cr_g_7 = next(r for r in fake.records if r.get("spmCode") == "CR-G-7")
    cr_g_7["supersessionDate"] = 1792425600000
    fake.records.append(new_version)

    report = run(config, db_path, full_sweep=True)
    with sqlite3.connect(db_path) as conn:
        changes = {
            doc: json.loads(fields)
            for doc, fields in conn.execute(
                "SELECT document_id, fields FROM changes WHERE run_id = ?", [report.run_id]
            )
        }
    assert changes == {
        "brdr:spm:IC-6": ["date", "extra.doc_id", "extra.document_url", "extra.version", "url"],
        "brdr:spm:CR-G-7": ["extra.status", "extra.supersession_date"],
    }
    docs = documents(db_path)
    assert docs["brdr:spm:IC-6"]["version"] == "20261020-70"
    assert docs["brdr:spm:CR-G-7"]["status"] == "superseded"
    assert docs["brdr:spm:CR-G-7"]["supersession_date"] == "2026-10-20"  # 16:00Z on the 19th


def test_english_and_chinese_records_are_one_document(brdr_config, fake, db_path):
    twin = copy.deepcopy(next(r for r in fake.records if r["docId"] == "20250428-3-EN"))
    twin.update(docId="20250428-3-TC", docLongTitle="第二批生成式人工智能沙盒")
    fake.records.append(twin)
    run(brdr_config(languages=["eng", "chi"]), db_path, full_sweep=True)
    docs = documents(db_path)
    assert len(docs) == 117
    assert docs["brdr:doc:20250428-3"]["chinese"] == {
        "doc_id": "20250428-3-TC",
        "title": "第二批生成式人工智能沙盒",
    }
    assert ("chi", 1) in fake.pages("CIR")


def test_incremental_runs_ask_for_recent_documents_only(brdr_config, fake, db_path):
    config = brdr_config()
    run(config, db_path, full_sweep=True)
    fake.bodies.clear()
    report = run(config, db_path)  # incremental: fewer results, not a sharp drop
    assert report.exit_status == ExitStatus.OK
    assert {
        c["valueList"][0]
        for b in fake.bodies
        for c in b["docSrchCriteriaDtoList"]
        if c["fieldCode"] == "issueDateGrp"
    } == {"THIS_YEAR"}
    # 2026's circulars only, read until a short page: the count filled two, the third is empty
    assert fake.pages("CIR") == [("eng", 1), ("eng", 2), ("eng", 3)]
    assert report.events == []


LIES = {
    "count 30% short": ({"count_short_by": 0.3}, "read 104 records, the register announced 72"),
    "a repeated page": ({"repeat_page": 3}, "page 3 of eng repeats a record read before"),
    "pages that never end": ({"endless": True}, "still full pages after 8 pages (page cap)"),
}


@pytest.mark.parametrize("lie", LIES, ids=list(LIES))
@pytest.mark.parametrize("after_baseline", [False, True], ids=["first sweep", "after baseline"])
def test_a_lying_register_makes_the_sweep_unhealthy_and_marks_nothing(
    brdr_config, fake, db_path, lie, after_baseline
):
    config = brdr_config(doc_types=["CIR"], max_pages=8)
    if after_baseline:
        assert run(config, db_path, full_sweep=True).exit_status == ExitStatus.OK
    before = documents(db_path) if after_baseline else {}
    settings, reason = LIES[lie]
    for name, value in settings.items():
        setattr(fake, name, value)
    fake.bodies.clear()
    report = run(config, db_path, full_sweep=True)
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    (plan,) = report.plans
    assert not plan.healthy and reason in plan.reason, plan.reason
    assert documents(db_path) == before  # nothing stored, withdrawn or superseded
    with sqlite3.connect(db_path) as conn:
        assert conn.execute(
            "SELECT count(*) FROM changes WHERE run_id = ?", [report.run_id]
        ).fetchone() == (0,)
    assert len(fake.pages("CIR")) <= 9  # the page cap holds an endless pager
