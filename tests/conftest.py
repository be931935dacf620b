"""Shared fixtures: a recorded HKMA site on 127.0.0.1 and a config that crawls it fast."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spiders.middleware import LOOPBACK_ONLY_ENV
from tracker.config import Config, load_config
from tracker.demo import DEMO_PAGE, DEMO_SITE
from tracker.loopback import RecordedSite
from tracker.sources import SOURCES

# Inherited by every crawl process the tests start: nothing may leave 127.0.0.0/8.
os.environ[LOOPBACK_ONLY_ENV] = "1"

FIXTURES = Path(__file__).parent / "fixtures"
RAW_PAGE = DEMO_SITE / "day1" / DEMO_PAGE.split("hkma.gov.hk/", 1)[1] / "index.html"
BROWSER_PAGE = FIXTURES / "aml-cft-page_browser-saved.html"
FEED_URL = "https://www.hkma.gov.hk/eng/other-information/rss/rss_{}.xml"
# The other regulators' sources (the SFC's, the IA's) are on by default: off for tests that serve
# only HKMA's hosts, so that nothing is ever asked of a real host.
OTHER_REGULATORS_OFF = "".join(
    f"[sources.{name}]\nenabled = false\n"
    for name, source in SOURCES.items()
    if source.regulator != "HKMA"
)
# For configs of tests that serve only the recorded www site: the other sources and the
# linked documents stay off, so that nothing is ever asked of a real HKMA host.
WWW_ONLY = f"""
[sources.brdr]
enabled = false

[sources.press_releases]
enabled = false

[documents]
enabled = false
{OTHER_REGULATORS_OFF}"""


def only_source_config(tmp_path: Path, source: str, crawl: str = "", settings: str = "") -> Path:
    """A config file that crawls `source` alone (every other source off), fast, with digests
    in `tmp_path`; `crawl`: more lines of the `[crawl]` table, `settings` of the source's."""
    others = "".join(f"[sources.{name}]\nenabled = false\n" for name in SOURCES if name != source)
    path = tmp_path / f"{source}.toml"
    path.write_text(
        f"[crawl]\ndownload_delay = 0\nretries = 0\n{crawl}{others}"
        f"[sources.{source}]\nenabled = true\n{settings}"
        f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n',
        encoding="utf-8",
    )
    return path


def page_path(url: str = DEMO_PAGE) -> str:
    """The server path of a real HKMA URL."""
    return "/" + url.split("hkma.gov.hk/", 1)[1]


# The slow tier: modules whose tests run real crawls, servers, browsers or processes.
# `make test-fast` runs the rest (pure functions and in-memory checks) in seconds.
CRAWL_MODULES = {
    "test_all_sources",
    "test_analyst",
    "test_brdr",
    "test_cli",
    "test_compliance",
    "test_delivery",
    "test_demo",
    "test_digest_rendering",
    "test_documents",
    "test_end_to_end",
    "test_lifecycle",
    "test_press_releases",
    "test_processes",
    "test_schedule",
    "test_scrapyd",
    "test_sfc",
    "test_ia",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in CRAWL_MODULES:
            item.add_marker(pytest.mark.crawl)


@pytest.fixture
def site(tmp_path: Path):
    """Day 1 of the recorded site, copied so a test may edit it, served on 127.0.0.1."""
    root = tmp_path / "site"
    shutil.copytree(DEMO_SITE / "day1", root)
    with RecordedSite(root) as served:
        yield served


def use_day(site: RecordedSite, day: int) -> None:
    shutil.rmtree(site.root)
    shutil.copytree(DEMO_SITE / f"day{day}", site.root)


@pytest.fixture
def config(tmp_path: Path, site: RecordedSite) -> Config:
    """Crawl the recorded site: no delay, short timeouts, no retries, the demo page only."""
    path = tmp_path / "tracker.toml"
    path.write_text(
        f"""
[crawl]
download_delay = 0
timeout = 3
retries = 0
process_timeout = 120

[sources.pages]
urls = ["{DEMO_PAGE}"]
{WWW_ONLY}
[digest]
folder = "{(tmp_path / "digests").as_posix()}"

[mirror]
"https://www.hkma.gov.hk" = "{site.base_url}"
""",
        encoding="utf-8",
    )
    return load_config(path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    why = "Chromium is not installed: `make browser` installs Debian's chromium (root, apt)"
    if os.environ.get("HKMA_TRACKER_CI"):
        pytest.fail(why)  # CI installs it first: missing there is a broken setup, not a skip
    pytest.skip(why)


def headless_chromium(chromium: str, page: Path, profile: Path, *action: str) -> str:
    """Open `page` in headless Chromium, offline and without a first-run profile, and do
    `action` (--screenshot=..., --print-to-pdf=..., --dump-dom); what it printed."""
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *action,
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
        text=True,
    )
    return done.stdout
