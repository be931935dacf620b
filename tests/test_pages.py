"""Parsing the real AML/CFT topic page, as served and as a browser saved it."""

import re

import pytest
from conftest import BROWSER_PAGE, DEMO_PAGE, RAW_PAGE
from scrapy.http import HtmlResponse, Request

from spiders.pages import PagesSpider, parse_topic_page
from storage.records import Snapshot

PDF = "https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular"


@pytest.fixture(scope="module")
def raw_html():
    return RAW_PAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documents(raw_html):
    return {d.key: d for d in parse_topic_page(raw_html, DEMO_PAGE)}


def row(documents, url):
    return documents[f"{DEMO_PAGE}|{url}"]


def test_the_page_and_each_distinct_row_are_documents(documents):
    page = documents[DEMO_PAGE]
    assert page.title == "Circulars & Guidance Papers"
    assert page.date == "2025-04-10"  # "Last revision date : 10 April 2025"
    assert page.text.startswith("Circulars aim to inform AIs of new regulatory requirements")
    assert len(documents) == 84  # the page + 83 distinct links


def test_a_row_has_a_clean_title_its_listing_date_and_attachments(documents):
    scams = row(documents, f"{PDF}/2024/20241220e1.pdf")
    assert scams.title == "Measures to protect bank customers from authorized payment scams"
    assert scams.date == "2024-12-20"
    assert scams.extra["sections"] == ["Circulars"]

    guideline = row(documents, f"{PDF}/2023/20230525e1.pdf")
    assert guideline.extra["attachments"] == [
        {
            "label": "Enclosure 1",
            "title": "Consultation Conclusions",
            "url": f"{PDF}/2023/20230525e1a1.pdf",
        },
        {
            "label": "Enclosure 2",
            "title": "Marked-up version of AML-CFT Guideline",
            "url": f"{PDF}/2023/20230525e1a2.pdf",
        },
    ]


def test_listing_date_comes_from_the_table_not_the_doc_id(documents):
    brdr = row(documents, "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20250408-4-EN")
    assert brdr.date == "2025-04-10"


def test_raw_and_browser_layouts_give_identical_documents(documents):
    browser = {
        d.key: d for d in parse_topic_page(BROWSER_PAGE.read_text(encoding="utf-8"), DEMO_PAGE)
    }
    assert browser == documents


def _hashes(html):
    return {
        d.key: Snapshot(d.title, d.url, d.date, d.text, d.extra).content_hash()
        for d in parse_topic_page(html, DEMO_PAGE)
    }


def test_per_response_noise_changes_nothing(raw_html):
    noisy = re.sub(
        r"content='[0-9a-f]{40,}'", "content='0123456789abcdef0123456789abcdef0123456789'", raw_html
    )
    assert noisy != raw_html
    # Navigation and menus sit in NO INDEX blocks; edit one of them and a script too.
    noisy = noisy.replace(
        "<!--NO INDEX START-->", "<!--NO INDEX START--><a href='/x'>New menu entry</a>", 1
    )
    noisy = noisy.replace("</body>", "<script>var t = 'rotated-token-42';</script></body>")
    assert _hashes(noisy) == _hashes(raw_html)


def test_an_edited_paragraph_changes_the_page_only(raw_html):
    edited = raw_html.replace("Circulars aim to inform AIs", "Circulars aim to notify AIs", 1)
    before, after = _hashes(raw_html), _hashes(edited)
    assert {k for k in before if before[k] != after[k]} == {DEMO_PAGE}


def test_a_non_html_response_is_a_listing_failure():
    spider = PagesSpider(listings={DEMO_PAGE: DEMO_PAGE})
    request = Request(DEMO_PAGE, meta={"listing": DEMO_PAGE})
    response = HtmlResponse(
        url=DEMO_PAGE,
        body=b"%PDF-1.4",
        request=request,
        headers={"Content-Type": "application/pdf"},
    )
    (outcome,) = spider.parse_listing(response, DEMO_PAGE)
    assert (outcome.ok, outcome.reason) == (
        False,
        "not an HTML page (Content-Type application/pdf)",
    )
