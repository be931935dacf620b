"""Where requests may go: HKMA hosts only, through mirrors, with real URLs kept in responses."""

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler

from spiders.middleware import (
    LOOPBACK_ONLY_ENV,
    LOOPBACK_SLOT,
    HkmaOnlyMirrorMiddleware,
    MirrorMap,
)
from spiders.settings import settings_for
from tracker.config import DEFAULTS

REAL = "https://www.hkma.gov.hk/eng/other-information/rss/rss_circulars.xml?x=1"


@pytest.fixture(autouse=True)
def production_mode(monkeypatch):
    """These tests build requests but send none: check the rules as they are in production."""
    monkeypatch.delenv(LOOPBACK_ONLY_ENV)


def middleware(mirrors):
    return HkmaOnlyMirrorMiddleware(MirrorMap(mirrors), MemoryStatsCollector(get_crawler()))


def test_requests_for_a_mirrored_origin_go_to_the_mirror_with_path_and_query():
    mw = middleware({"https://www.hkma.gov.hk": "http://127.0.0.1:8000/"})
    mirrored = mw.process_request(Request(REAL, meta={"listing": REAL}))
    assert mirrored.url == "http://127.0.0.1:8000/eng/other-information/rss/rss_circulars.xml?x=1"
    assert mirrored.meta["listing"] == REAL
    # A loopback mirror is not HKMA: no politeness delay, no AutoThrottle.
    assert mirrored.meta["download_slot"] == LOOPBACK_SLOT
    assert mirrored.meta["autothrottle_dont_adjust_delay"] is True
    assert mw.process_request(mirrored) is None  # not rewritten twice


def test_a_throttled_loopback_mirror_keeps_its_real_hosts_slot():
    """For rehearsals and benchmarks of timings ([crawl] throttle_mirrors): each mirrored
    host waits its turn as the real one would."""
    mirrors = {"https://www.hkma.gov.hk": "http://127.0.0.1:8000/"}
    crawler = get_crawler(settings_dict={"HKMA_THROTTLE_MIRRORS": True, "HKMA_MIRRORS": mirrors})
    crawler.stats = MemoryStatsCollector(crawler)
    mirrored = HkmaOnlyMirrorMiddleware.from_crawler(crawler).process_request(Request(REAL))
    assert mirrored.url.startswith("http://127.0.0.1:8000/")
    assert mirrored.meta["download_slot"] == "www.hkma.gov.hk"
    assert "autothrottle_dont_adjust_delay" not in mirrored.meta
    assert (
        settings_for({**DEFAULTS["crawl"], "throttle_mirrors": True}, {})["HKMA_THROTTLE_MIRRORS"]
        is True
    )


def test_loopback_slot_has_no_delay_while_hkma_keeps_the_polite_default():
    settings = settings_for(DEFAULTS["crawl"], {})
    assert settings["DOWNLOAD_SLOTS"][LOOPBACK_SLOT]["delay"] == 0
    assert settings["DOWNLOAD_DELAY"] == 2.0
    assert settings["AUTOTHROTTLE_ENABLED"] is True
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["TELNETCONSOLE_ENABLED"] is False
    assert settings["REMOTE_CONTROL_ENABLED"] is False
    assert settings["DOWNLOAD_VERIFY_CERTIFICATES"] is True


def test_a_remote_mirror_keeps_the_polite_delay():
    mw = middleware({"https://www.hkma.gov.hk": "https://mirror.example.org"})
    mirrored = mw.process_request(Request(REAL))
    assert mirrored.url.startswith("https://mirror.example.org/eng/")
    assert "download_slot" not in mirrored.meta


def test_unmirrored_hkma_requests_pass_untouched():
    assert middleware({}).process_request(Request("https://brdr.hkma.gov.hk/eng/doc-ldg/")) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://www.info.gov.hk/gia/general/x.htm",
        "http://127.0.0.2:8000/x",
        "https://hkma.gov.hk.evil.com/",
        "https://sfc.hk.evil.com/",
        "https://www.notsfc.hk/",
        "https://evil-ia.org.hk.example/",
    ],
)
def test_other_hosts_are_refused(url):
    mw = middleware({"https://www.hkma.gov.hk": "http://127.0.0.1:8000"})
    with pytest.raises(IgnoreRequest, match="not a regulator's host"):
        mw.process_request(Request(url))
    assert mw.stats.get_value("hkma/offsite_blocked") == 1


def test_responses_and_redirects_come_back_with_real_urls():
    mw = middleware({"https://www.hkma.gov.hk": "http://127.0.0.1:8000"})
    response = HtmlResponse(
        "http://127.0.0.1:8000/media/eng/doc/a.pdf",
        status=301,
        headers={"Location": "http://127.0.0.1:8000/media/eng/doc/b.pdf"},
    )
    real = mw.process_response(Request(response.url), response)
    assert real.url == "https://www.hkma.gov.hk/media/eng/doc/a.pdf"
    assert real.headers[b"Location"] == b"https://www.hkma.gov.hk/media/eng/doc/b.pdf"


def test_loopback_only_mode_refuses_any_real_host(monkeypatch):
    monkeypatch.setenv(LOOPBACK_ONLY_ENV, "1")
    mw = middleware({"https://www.hkma.gov.hk": "http://127.0.0.1:8000"})
    assert mw.process_request(Request(REAL)).url.startswith("http://127.0.0.1:8000/")
    with pytest.raises(IgnoreRequest, match="allows loopback only"):
        mw.process_request(Request("https://brdr.hkma.gov.hk/restapi/doc-search"))


def test_a_host_that_did_not_resolve_fails_its_other_requests_at_once():
    from scrapy.exceptions import CannotResolveHostError
    from twisted.internet.error import DNSLookupError

    mw = middleware({})
    first = Request(REAL)
    assert mw.process_request(first) is None
    mw.process_exception(first, DNSLookupError("www.hkma.gov.hk"))
    with pytest.raises(CannotResolveHostError, match="already failed in this crawl"):
        mw.process_request(Request("https://www.hkma.gov.hk/eng/other/"))
    # Other hosts, and other failures, are not affected.
    assert mw.process_request(Request("https://brdr.hkma.gov.hk/eng/")) is None
    mw.process_exception(Request("https://api.hkma.gov.hk/x"), TimeoutError())
    assert mw.process_request(Request("https://api.hkma.gov.hk/x")) is None
