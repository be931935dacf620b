"""Config: defaults without a file, and clear errors naming the key at fault."""

import re

import pytest

from tracker.config import ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file(monkeypatch):
    monkeypatch.delenv("HKMA_TRACKER_CONFIG", raising=False)
    config = load_config()
    # The HKMA's sources, then the SFC's and the Insurance Authority's.
    assert config.enabled_sources() == ["rss", "pages", "brdr", "press_releases", "sfc", "ia"]
    assert config.listings("brdr")["SPM"] == "https://brdr.hkma.gov.hk/restapi/doc-search#SPM"
    cir = "https://brdr.hkma.gov.hk/restapi/doc-search#CIR"
    assert config.spider_options("brdr")["date_groups"][cir] == "THIS_YEAR"
    assert config.spider_options("brdr", full={cir})["date_groups"][cir] == "ALL"
    assert config.listings("press_releases") == {
        "press-releases": "https://api.hkma.gov.hk/public/press-releases?lang=en"
    }
    assert config.listings("rss")["circulars"] == (
        "https://www.hkma.gov.hk/eng/other-information/rss/rss_circulars.xml"
    )
    assert len(config.listings("rss")) == 6
    assert any("anti-money-laundering" in u for u in config.listings("pages"))
    assert any(u.endswith("/liquidity/") for u in config.listings("pages"))
    assert config.crawl.download_delay >= 1 and config.crawl.obey_robots_txt
    assert config.mirrors == {}


def test_file_from_environment_and_overrides(tmp_path, monkeypatch):
    path = write(tmp_path, "[crawl]\ndownload_delay = 5\n[sources.rss]\nenabled = false\n")
    monkeypatch.setenv("HKMA_TRACKER_CONFIG", str(path))
    config = load_config()
    assert config.crawl.download_delay == 5
    assert config.crawl.timeout == 30  # untouched keys keep their defaults
    assert config.enabled_sources() == ["pages", "brdr", "press_releases", "sfc", "ia"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[crawl]\ndownload_dely = 1\n", "unknown key 'crawl.download_dely'"),
        ("[sourcez]\n", "unknown key 'sourcez'"),
        (
            '[crawl]\ndownload_delay = "fast"\n',
            "crawl.download_delay must be a non-negative number, got 'fast'",
        ),
        ("[crawl]\ntimeout = -1\n", "crawl.timeout must be a non-negative number, got -1"),
        ("[crawl]\nretries = 1.5\n", "crawl.retries must be a whole number, got 1.5"),
        ("[crawl]\nautothrottle = 1\n", "crawl.autothrottle must be true or false, got 1"),
        ('[crawl]\nlog_level = "LOUD"\n', "crawl.log_level must be one of"),
        ('[crawl]\nengine = "celery"\n', "crawl.engine must be local or scrapyd"),
        (
            '[crawl]\nengine = "scrapyd"\n[scrapyd]\nurls = ["node-1:6800"]\n',
            "scrapyd.urls: 'node-1:6800' is not a URL",
        ),
        (
            '[sources.sfc.probes]\ncirculars = "https://www.hkma.gov.hk/x.xml"\n',
            "sources.sfc.probes.circulars must be an https URL on a host of the SFC",
        ),
        ('[sources.ia.pages]\ncirculars = "https://www.ia.org.hk/en/c.html"\n', "must hold {year}"),
        (
            '[sources.pages]\nurls = ["https://example.com/"]\n',
            "sources.pages.urls[0] must be an https URL on a host of the HKMA",
        ),
        (
            '[sources.rss.feeds]\nmine = "http://www.hkma.gov.hk/x.xml"\n',
            "sources.rss.feeds.mine must be an https URL on a host of the HKMA",
        ),
        (
            '[mirror]\n"https://example.com" = "http://127.0.0.1:1"\n',
            "is not a regulator's origin (HKMA, SFC, IA)",
        ),
        ('[mirror]\n"https://www.hkma.gov.hk" = "nowhere"\n', "'nowhere' is not a base URL"),
        ("crawl = 3\n", "crawl must be a table"),
        (
            '[sources.brdr]\nrecent_date_group = "LAST_MONTH"\n',
            "sources.brdr.recent_date_group must be one of THIS_YEAR, ALL",
        ),
        (
            '[sources.brdr]\nurl = "https://brdr.example.com/x"\n',
            "sources.brdr.url must be an https URL on a host of the HKMA",
        ),
        (
            "[sources.brdr]\nlanguages = []\n",
            "sources.brdr.languages must name at least one language",
        ),
        (
            '[documents]\nmax_per_run = "all"\n',
            "documents.max_per_run must be a non-negative number",
        ),
        (
            '[crawl]\nca_bundle = "/nonexistent/ca.pem"\n',
            "crawl.ca_bundle: no file /nonexistent/ca.pem",
        ),
        ("[crawl\n", "c.toml"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"c\.toml") as error:
        load_config(path)
    assert message in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope.toml not found"):
        load_config(tmp_path / "nope.toml")


def test_mirror_options_add_to_the_mirror_table(tmp_path):
    path = write(tmp_path, '[mirror]\n"https://brdr.hkma.gov.hk" = "http://127.0.0.1:9001"\n')
    config = load_config(path, ["https://www.hkma.gov.hk=http://127.0.0.1:8000/"])
    assert config.mirrors == {
        "https://brdr.hkma.gov.hk": "http://127.0.0.1:9001",
        "https://www.hkma.gov.hk": "http://127.0.0.1:8000",
    }
    with pytest.raises(
        ConfigError, match=re.escape("--mirror 'https://www.hkma.gov.hk': expected ORIGIN=BASE")
    ):
        load_config(None, ["https://www.hkma.gov.hk"])
