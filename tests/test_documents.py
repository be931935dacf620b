"""Linked documents end to end: the real topic page's rows link PDFs built here, served from
127.0.0.1 with a BRDR landing page in front of one; real crawls, real pypdf in a limited child."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import DEMO_PAGE, OTHER_REGULATORS_OFF, page_path

from tracker.config import load_config
from tracker.demo_apis import CIRCULAR, make_pdf
from tracker.document_text import extract_pdf_text, extract_pdf_texts
from tracker.exit_codes import ExitStatus
from tracker.loopback import Override, RecordedSite
from tracker.run import run

PDF_DIR = "media/eng/doc/key-information/guidelines-and-circular/2024"
PDFS = ["20241220e1.pdf", "20241112e1.pdf", "20240909e1.pdf"]
LANDING = "/eng/doc-ldg/docId/20250408-4-EN"
BRDR_PDF = "/eng/doc-ldg/docId/getPdf/20250408-4-EN/20250408-4-EN.pdf"
ROW = re.compile(
    r'<div class="content-wrapper multiple-wrapper filter-table-row".*?</tr></tbody></table></div></div>',
    re.DOTALL,
)


def doc_id(name):
    return f"pages:{DEMO_PAGE}|https://www.hkma.gov.hk/{PDF_DIR}/{name}"


BRDR_DOC = f"pages:{DEMO_PAGE}|https://brdr.hkma.gov.hk{LANDING}"


def circular(title, effective="1 March 2026", extra_sentence=""):
    lines = [
        line.replace("Guidance on combating high-end money laundering", title) for line in CIRCULAR
    ]
    lines = [line.replace("1 March 2026", effective) for line in lines]
    return lines[:9] + ([extra_sentence] if extra_sentence else []) + lines[9:]


@pytest.fixture
def sites(tmp_path):
    """www: the real AML/CFT page cut down to its BRDR row and three PDF rows, with those
    PDFs; brdr: the landing page of the BRDR row and its PDF."""
    from tracker.demo import DEMO_SITE

    www, brdr = tmp_path / "www", tmp_path / "brdr"
    page = www / page_path().lstrip("/") / "index.html"
    page.parent.mkdir(parents=True)
    html = (DEMO_SITE / "day1" / page_path().lstrip("/") / "index.html").read_text(encoding="utf-8")
    keep = [LANDING, *PDFS]
    page.write_text(
        ROW.sub(lambda m: m.group(0) if any(k in m.group(0) for k in keep) else "", html),
        encoding="utf-8",
    )
    (www / PDF_DIR).mkdir(parents=True)
    for n, name in enumerate(PDFS):
        (www / PDF_DIR / name).write_bytes(make_pdf(circular(f"Circular {n}")))
    (brdr / LANDING.lstrip("/")).mkdir(parents=True)
    (brdr / LANDING.lstrip("/") / "index.html").write_text(
        '<html><body><div class="document-file-info">'
        f'<a href="{BRDR_PDF}">20250408-4-EN.pdf</a></div></body></html>',
        encoding="utf-8",
    )
    (brdr / BRDR_PDF.lstrip("/")).parent.mkdir(parents=True)
    (brdr / BRDR_PDF.lstrip("/")).write_bytes(make_pdf(circular("Strengthening the response")))
    with RecordedSite(www, validators=False) as w, RecordedSite(brdr) as b:
        yield w, b, page


@pytest.fixture
def config(tmp_path, sites):
    www, brdr, _ = sites
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[crawl]
download_delay = 0
timeout = 3
retries = 0
[sources.rss]
enabled = false
[sources.brdr]
enabled = false
[sources.press_releases]
enabled = false
{OTHER_REGULATORS_OFF}
[sources.pages]
urls = ["{DEMO_PAGE}"]
[documents]
pdf_timeout = 20
[digest]
folder = "{(tmp_path / "digests").as_posix()}"
[mirror]
"https://www.hkma.gov.hk" = "{www.base_url}"
"https://brdr.hkma.gov.hk" = "{brdr.base_url}"
""",
        encoding="utf-8",
    )
    return load_config(path)


def row(db_path, doc):
    with sqlite3.connect(db_path) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM documents_full WHERE id = ?", [doc]).fetchone())


def events(db_path, run_id):
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT kind, document_id, fields, diff FROM changes WHERE run_id = ?", [run_id]
        )
        return [(k, d, json.loads(f), diff) for k, d, f, diff in rows]


def pdf_requests(site):
    return [p for p in site.paths if p.endswith(".pdf")]


def set_size_note(page, name, size):
    html = page.read_text(encoding="utf-8")
    html, n = re.subn(
        rf'({re.escape(name)}"[^>]*>[^<]*?)\(PDF File, [\d.]+ [KM]B\)',
        rf"\1(PDF File, {size})",
        html,
    )
    assert n == 1
    page.write_text(html, encoding="utf-8")


def test_first_run_reads_every_linked_document_then_rereads_nothing(sites, config, db_path):
    www, brdr, _ = sites
    first = run(config, db_path)
    assert first.exit_status == ExitStatus.OK
    assert first.documents.counts == {"fetched": 4}
    content = json.loads(row(db_path, doc_id(PDFS[0]))["document_content"])
    assert content["format"] == "pdf"
    assert content["text"].startswith(
        "Our Ref.: B1/15C B9/29C 12 December 2025 The Chief Executive"
    )
    assert content["references"] == ["B1/15C", "B9/29C"]
    assert content["addressees"] == ["All authorized institutions"]
    assert content["spm_codes"] == ["CR-G-7", "IC-6"]
    assert content["effective_dates"] == [
        {
            "date": "2026-03-01",
            "sentence": "The revised requirements will take effect on 1 March 2026.",
        }
    ]
    # The BRDR row's link is a landing page: its PDF was followed and read.
    landed = row(db_path, BRDR_DOC)
    assert landed["fetch_status"] == "ok"
    assert "Strengthening the response" in json.loads(landed["document_content"])["text"]
    # A document's first text is recorded, not reported.
    assert {kind for kind, *_ in events(db_path, first.run_id)} == {"new"}

    www.reset_counters()
    brdr.reset_counters()
    again = run(config, db_path)
    assert again.documents is None
    assert pdf_requests(www) == [] and brdr.requests == 0
    assert events(db_path, again.run_id) == []


def test_pdfs_are_read_while_the_crawl_still_fetches_others(sites, config, db_path, monkeypatch):
    import tracker.document_text
    import tracker.run

    www, _, _ = sites
    slow = make_pdf(circular("Circular 2"))
    www.overrides[f"/{PDF_DIR}/{PDFS[2]}"] = Override(
        body=slow, content_type="application/pdf", delay=2.0
    )
    read_at, crawl_ended = {}, []
    real_result, real_crawl = tracker.document_text._result, tracker.run.crawl

    def result(job):
        read_at[job.key] = time.monotonic()
        return real_result(job)

    def crawl(*args, **kwargs):
        results = real_crawl(*args, **kwargs)
        crawl_ended.append(time.monotonic())
        return results

    monkeypatch.setattr(tracker.document_text, "_result", result)
    monkeypatch.setattr(tracker.run, "crawl", crawl)
    first = run(config, db_path)
    assert first.documents.counts == {"fetched": 4}
    documents_crawl_end = crawl_ended[-1]  # the listings' crawl came first
    # Read while the crawl went on, well before the slow one (two seconds late) came.
    assert read_at[doc_id(PDFS[0])] < documents_crawl_end
    assert read_at[doc_id(PDFS[0])] < read_at[doc_id(PDFS[2])] - 1.0
    for name in PDFS:  # each recorded as if read after the crawl
        text = json.loads(row(db_path, doc_id(name))["document_content"])["text"]
        assert f"Circular {PDFS.index(name)}" in text


def test_reexport_with_the_same_text_is_not_a_change_but_an_edit_is(sites, config, db_path):
    www, _, page = sites
    run(config, db_path)
    # Re-exported: other bytes, same text; the listing's size note moves.
    (www.root / PDF_DIR / PDFS[0]).write_bytes(
        make_pdf(circular("Circular 0"), producer="Acrobat", spacing=15)
    )
    set_size_note(page, PDFS[0], "155.0 KB")
    www.reset_counters()
    reexported = run(config, db_path)
    assert pdf_requests(www) == [f"/{PDF_DIR}/{PDFS[0]}"]
    assert reexported.documents.counts == {"fetched": 1}
    assert events(db_path, reexported.run_id) == []

    # An edited paragraph and a new effective date: one change naming both.
    edited = circular("Circular 0", effective="1 June 2026", extra_sentence="Annex B is withdrawn.")
    (www.root / PDF_DIR / PDFS[0]).write_bytes(make_pdf(edited))
    set_size_note(page, PDFS[0], "156.0 KB")
    changed = run(config, db_path)
    (event,) = events(db_path, changed.run_id)
    kind, document, fields, diff = event
    assert (kind, document) == ("changed", doc_id(PDFS[0]))
    # "revised requirements" also makes that sentence a supersession mention.
    assert fields == ["document.effective_dates", "document.supersession_mentions", "document.text"]
    assert "-The revised requirements will take effect on 1 March 2026." in diff
    assert "+The revised requirements will take effect on 1 June 2026." in diff
    assert "+Annex B is withdrawn." in diff


def test_bad_documents_are_recorded_with_a_reason_and_retried(sites, config, db_path):
    www, _, _ = sites
    good = {name: (www.root / PDF_DIR / name).read_bytes() for name in PDFS}
    www.overrides[f"/{PDF_DIR}/{PDFS[0]}"] = Override(
        body=b"<html><body>Document moved</body></html>"
    )
    www.overrides[f"/{PDF_DIR}/{PDFS[1]}"] = Override(
        body=good[PDFS[1]][: len(good[PDFS[1]]) // 2], content_type="application/pdf"
    )
    www.overrides[f"/{PDF_DIR}/{PDFS[2]}"] = Override(
        body=good[PDFS[2]], content_type="application/pdf", stall_after=200, delay=6
    )
    first = run(config, db_path)
    assert first.exit_status == ExitStatus.OK  # listings were healthy; documents wait for retry
    assert first.documents.counts == {"fetched": 1, "unparsable": 2, "failed": 1}
    html = row(db_path, doc_id(PDFS[0]))
    assert (html["fetch_status"], html["document_content"]) == ("unparsable", None)
    assert html["fetch_reason"].startswith("expected a PDF, got an HTML page")
    truncated = row(db_path, doc_id(PDFS[1]))
    assert (
        truncated["fetch_status"] == "unparsable" and "PdfStreamError" in truncated["fetch_reason"]
    )
    stalled = row(db_path, doc_id(PDFS[2]))
    assert (stalled["fetch_status"], stalled["fetch_reason"]) == (
        "failed",
        "unreachable: timed out",
    )

    www.overrides.clear()
    www.reset_counters()
    retried = run(config, db_path)
    assert sorted(pdf_requests(www)) == sorted(f"/{PDF_DIR}/{name}" for name in PDFS)
    assert retried.documents.counts == {"fetched": 3}
    assert all(row(db_path, doc_id(name))["fetch_status"] == "ok" for name in PDFS)
    assert events(db_path, retried.run_id) == []  # first texts: recorded, not news


def test_conditional_requests_where_the_server_gives_validators(sites, config, db_path):
    www, _, _ = sites
    www.validators = True
    config = dataclasses.replace(
        config, documents=dataclasses.replace(config.documents, revalidate_after_days=0)
    )
    run(config, db_path)
    assert row(db_path, doc_id(PDFS[0]))["fetch_etag"]
    www.reset_counters()
    again = run(config, db_path)
    assert www.not_modified == 3 and again.documents.counts == {"not-modified": 3}
    assert sum(1 for p in www.paths if p.endswith(".pdf")) == 3
    assert events(db_path, again.run_id) == []


def test_pdf_extraction_is_limited_in_time():
    # A child that cannot finish in time is killed and the document is unparsable, not empty.
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "a.pdf"
        pdf.write_bytes(make_pdf(CIRCULAR * 200))
        result = extract_pdf_text(pdf, timeout_s=0.001, memory_mb=512)
    assert result.text is None
    assert result.reason == "unparsable: text extraction took over 0.001 s"


def test_pdfs_are_read_side_by_side_each_within_its_limits_and_the_run_deadline(tmp_path):
    import time

    paths = {}
    for name, body in {
        "circular": make_pdf(CIRCULAR),
        "long": make_pdf(CIRCULAR, pages=5000),  # some 3 s to read
        "broken": b"%PDF-1.7 not really",
        "second": make_pdf(["Second circular", *CIRCULAR]),
    }.items():
        paths[name] = tmp_path / f"{name}.pdf"
        paths[name].write_bytes(body)
    texts, unread = extract_pdf_texts(paths, timeout_s=1.0, memory_mb=512, workers=2)
    assert unread == []
    assert texts["circular"].text == extract_pdf_text(paths["circular"], 30, 512).text
    assert texts["second"].text.startswith("Second circular")
    assert texts["long"].timed_out and texts["long"].text is None
    assert texts["broken"].text is None and texts["broken"].reason.startswith("unparsable:")

    # More quick PDFs than workers: each is read as a worker comes free.
    many = {f"quick{n}": paths["circular"] for n in range(6)}
    texts, unread = extract_pdf_texts(many, timeout_s=30, memory_mb=512, workers=2)
    read_alone = extract_pdf_text(paths["circular"], 30, 512).text
    assert unread == [] and {k: t.text for k, t in texts.items()} == dict.fromkeys(many, read_alone)

    # At the run's deadline nothing more starts, and what runs is stopped: unread, not failed.
    texts, unread = extract_pdf_texts(
        paths, timeout_s=30, memory_mb=512, workers=1, stop_at=time.monotonic() + 0.05
    )
    assert set(texts) | set(unread) == set(paths) and "long" in unread
    assert all(not t.timed_out for t in texts.values())


def test_status_counts_linked_documents_by_state(sites, config, db_path, tmp_path):
    from click.testing import CliRunner

    from tracker.cli import cli

    www, _, _ = sites
    www.overrides[f"/{PDF_DIR}/{PDFS[0]}"] = Override(body=b"<html><body>moved</body></html>")
    run(config, db_path)
    config_file = tmp_path / "c.toml"
    result = CliRunner().invoke(
        cli, ["--config", str(config_file), "--db", str(db_path), "status", "--json"]
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    (linked,) = [r for r in records if r["type"] == "linked_documents"]
    assert linked == {"type": "linked_documents", "ok": 3, "unparsable": 1}


BAD_LINKS = {
    "mailto:aml@hkma.gov.hk": "not fetchable: a mailto: link",
    "javascript:void(0)": "not fetchable: a javascript: link",
    "tel:+85228788196": "not fetchable: a tel: link",
    "//evil.example.com/x.pdf": "not fetchable: evil.example.com is not a regulator's host",
    "https://[www.hkma.gov.hk/x.pdf": "not fetchable: malformed URL",
}


def test_links_that_cannot_be_fetched_are_recorded_once_and_stop_nothing(sites, config, db_path):
    www, _, page = sites
    html = page.read_text(encoding="utf-8")
    sample = next(m.group(0) for m in ROW.finditer(html) if PDFS[0] in m.group(0))
    bad_rows = [
        sample.replace(f"/{PDF_DIR}/{PDFS[0]}", link).replace(
            "Guidance", f"Odd link {n}"
        )  # a title of its own
        for n, link in enumerate(BAD_LINKS)
    ]
    page.write_text(html.replace(sample, "".join(bad_rows) + sample, 1), encoding="utf-8")

    first = run(config, db_path)

    assert first.exit_status == ExitStatus.OK
    assert first.documents.counts == {"fetched": 4, "not fetchable": 5}
    with sqlite3.connect(db_path) as conn:
        odd = dict(
            conn.execute(
                "SELECT fetch_url, fetch_reason FROM documents WHERE fetch_status = 'not-fetchable'"
            ).fetchall()
        )
    assert sorted(odd.values()) == sorted(BAD_LINKS.values())
    assert all(row(db_path, doc_id(name))["fetch_status"] == "ok" for name in PDFS)

    www.reset_counters()
    again = run(config, db_path)
    assert again.documents is None  # nothing re-tried, nothing reported again
    assert set(www.paths) == {"/robots.txt", page_path()}


def test_a_request_that_cannot_be_built_is_a_failed_fetch_not_the_end_of_all(tmp_path):
    import asyncio

    import scrapy

    from spiders.documents import DocumentsSpider, FetchedDocument

    asked = [
        {"id": "a", "url": "mailto:aml@hkma.gov.hk"},
        {"id": "b", "url": "https://www.hkma.gov.hk/b.pdf"},
    ]
    spider = DocumentsSpider({}, {"documents": asked, "output": str(tmp_path)})

    async def everything():
        return [out async for out in spider.start()]

    failed, request = asyncio.run(everything())
    assert isinstance(failed, FetchedDocument) and failed.status == "failed"
    assert failed.reason.startswith("not fetchable: ValueError")
    assert isinstance(request, scrapy.Request) and request.url == asked[1]["url"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://www.hkma.gov.hk/a.pdf", None),
        ("http://brdr.hkma.gov.hk/eng/doc-ldg/docId/20250428-3-EN", None),
        ("https://www.hkma.gov.hk:99999/x.pdf", "not fetchable: malformed URL"),
        ("https:///x.pdf", "not fetchable: malformed URL"),
        ("www.hkma.gov.hk/x.pdf", "not fetchable: no scheme"),
        ("ftp://www.hkma.gov.hk/x.pdf", "not fetchable: a ftp: link"),
        (
            "https://www.info.gov.hk/gia/x.htm",
            "not fetchable: www.info.gov.hk is not a regulator's host",
        ),
        (
            "https://hkma.gov.hk.evil.example/x",
            "not fetchable: hkma.gov.hk.evil.example is not a regulator's host",
        ),
    ],
)
def test_link_problem(url, problem):
    from tracker.documents import link_problem

    assert link_problem(url) == problem


def test_the_run_deadline_covers_reading_pdfs(sites, config, db_path):
    www, _, _ = sites
    slow = make_pdf(circular("Circular 0") * 400, pages=300)  # about 50 s to read
    (www.root / PDF_DIR / PDFS[0]).write_bytes(slow)
    started = time.monotonic()

    # 8 s: the crawls must finish within it on a loaded machine (at 4 s, under a full suite,
    # the fetches themselves were sometimes cut); the slow PDF alone takes far longer to read.
    cut = run(config, db_path, deadline=8)

    assert time.monotonic() - started < 20
    assert cut.exit_status == ExitStatus.SOURCE_UNHEALTHY
    # The slow PDF ate the time left: it and the PDFs read after it wait (those read before
    # it are stored), and so does delivery.
    documents, delivery = cut.unfinished
    unread = int(
        re.fullmatch(
            r"documents: PDFs not read: (\d) \(run deadline reached\); read next run", documents
        ).group(1)
    )
    assert delivery == "delivery: not attempted (run deadline reached)"
    states = [row(db_path, doc)["fetch_status"] for doc in [*map(doc_id, PDFS), BRDR_DOC]]
    assert states.count(None) == unread and set(states) <= {None, "ok"}  # not "unparsable"
    assert row(db_path, doc_id(PDFS[0]))["fetch_status"] is None
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT exit_code, unfinished FROM runs").fetchall() == [
            (3, "; ".join(cut.unfinished))
        ]

    (www.root / PDF_DIR / PDFS[0]).write_bytes(make_pdf(circular("Circular 0")))
    after = run(config, db_path, deadline=60)
    assert after.exit_status == ExitStatus.OK and after.documents.counts == {"fetched": unread}
    assert all(row(db_path, doc)["fetch_status"] == "ok" for doc in [*map(doc_id, PDFS), BRDR_DOC])


HTML_DOC = "/eng/news-and-media/press-releases/2026/07/20260707-8/"


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "until-close"])
def test_html_documents_have_a_limit_of_their_own_and_texts_a_cap(sites, config, db_path, sized):
    www, _, page = sites
    html = page.read_text(encoding="utf-8")
    sample = next(m.group(0) for m in ROW.finditer(html) if PDFS[1] in m.group(0))
    page.write_text(html.replace(f"/{PDF_DIR}/{PDFS[1]}", HTML_DOC), encoding="utf-8")
    paragraph = "<p>" + "Authorized institutions should review their controls. " * 40 + "</p>"
    www.overrides[HTML_DOC] = Override(
        body=f"<html><body><h1>Big</h1>{paragraph * 200}</body></html>".encode(), sized=sized
    )
    assert sample  # the page still lists the PDF rows
    config = dataclasses.replace(
        config,
        documents=dataclasses.replace(config.documents, html_max_bytes=200_000, max_text_chars=300),
    )

    first = run(config, db_path)

    assert first.exit_status == ExitStatus.OK
    big = row(db_path, f"pages:{DEMO_PAGE}|https://www.hkma.gov.hk{HTML_DOC}")
    assert (big["fetch_status"], big["document_content"]) == ("unparsable", None)
    assert big["fetch_reason"] == "dropped: response larger than the 200000-byte limit"
    # PDFs keep their own, larger limit; their text is cut at max_text_chars, and says so.
    content = json.loads(row(db_path, doc_id(PDFS[0]))["document_content"])
    assert len(content["text"]) == 300 and content["text_cut"].startswith("first 300 of ")
    assert content["effective_dates"][0]["date"] == "2026-03-01"  # read from the whole text


@pytest.mark.parametrize("full", ["downloads", "downloads and results"])
def test_a_full_temporary_folder_is_named_and_the_documents_stay_due(
    sites, config, db_path, monkeypatch, full
):
    """Writing into /dev/full fails as a full disk does (ENOSPC): the PDFs the crawl saves
    (and, worse, the crawl's own results) cannot be written. The run says so, not only that
    fetches 'gave no result', and every document is fetched again by the next run."""
    import tempfile

    import tracker.run
    from spiders.documents import pdf_file_name

    listings_only = dataclasses.replace(config.documents, enabled=False)
    run(dataclasses.replace(config, documents=listings_only), db_path)
    made = tracker.run._workdir
    ids = [*map(doc_id, PDFS), BRDR_DOC]

    def full_folder(kind):
        folder = made(kind)
        if kind == "documents":
            root = Path(folder.name)
            (root / "pdf").mkdir()
            for doc in ids:
                (root / "pdf" / pdf_file_name(doc)).with_suffix(".part").symlink_to("/dev/full")
            if full == "downloads and results":
                (root / "results").mkdir()
                (root / "results" / "documents.tmp").symlink_to("/dev/full")
        return folder

    monkeypatch.setattr(tracker.run, "_workdir", full_folder)
    cut = run(config, db_path)

    assert cut.exit_status == ExitStatus.SOURCE_UNHEALTHY
    (line,) = cut.unfinished
    assert line.startswith("documents: 4 of 4 fetches gave no result: ")
    assert "no space left on device" in line.lower() and tempfile.gettempdir() in line, line
    assert [row(db_path, doc)["fetch_status"] for doc in ids] == [None] * 4  # still due

    monkeypatch.setattr(tracker.run, "_workdir", made)
    after = run(config, db_path)
    assert after.exit_status == ExitStatus.OK and after.documents.counts == {"fetched": 4}
