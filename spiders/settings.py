"""Scrapy settings: polite defaults for HKMA, and the mapping from tracker config to settings."""

from __future__ import annotations

from typing import Any

from spiders.middleware import LOOPBACK_SLOT

BOT_NAME = "hkma-tracker"
SPIDER_MODULES = ["spiders"]  # every spider module of the package: a new source needs nothing here
NEWSPIDER_MODULE = "spiders"

USER_AGENT = "hkma-tracker/0.1 (regulatory change tracker)"
ROBOTSTXT_OBEY = True
DOWNLOAD_DELAY = 2.0
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 30
RETRY_TIMES = 2
# Topic pages are ~200 KB and feeds far less: anything over a few MB is not what we asked for.
DOWNLOAD_MAXSIZE = 5 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
COOKIES_ENABLED = False
# Scrapy does not verify TLS certificates unless told to. An incomplete chain on an HKMA host
# is fixed with a CA bundle (`[crawl] ca_bundle`, passed as SSL_CERT_FILE), never by turning
# verification off.
DOWNLOAD_VERIFY_CERTIFICATES = True
# An unattended tracker must not open consoles or control ports.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "WARNING"

DOWNLOADER_MIDDLEWARES = {"spiders.middleware.HkmaOnlyMirrorMiddleware": 700}
DOWNLOAD_SLOTS = {LOOPBACK_SLOT: {"delay": 0.0, "concurrency": 16}}
HKMA_MIRRORS: dict[str, str] = {}
HKMA_THROTTLE_MIRRORS = False  # True: a loopback mirror keeps its real host's delay


def settings_for(crawl: dict[str, Any], mirrors: dict[str, str]) -> dict[str, Any]:
    """Scrapy settings for one crawl, from the tracker's `[crawl]` table and mirror mapping."""
    settings = {
        name: value for name, value in globals().items() if name.isupper() and name != "LOG_LEVEL"
    }
    settings.update(
        USER_AGENT=crawl["user_agent"],
        DOWNLOAD_DELAY=crawl["download_delay"],
        AUTOTHROTTLE_START_DELAY=crawl["download_delay"],
        CONCURRENT_REQUESTS_PER_DOMAIN=crawl["concurrency_per_host"],
        AUTOTHROTTLE_ENABLED=crawl["autothrottle"],
        HKMA_THROTTLE_MIRRORS=crawl.get("throttle_mirrors", False),
        DOWNLOAD_TIMEOUT=crawl["timeout"],
        RETRY_TIMES=crawl["retries"],
        DOWNLOAD_MAXSIZE=crawl["max_page_bytes"],
        ROBOTSTXT_OBEY=crawl["obey_robots_txt"],
        LOG_LEVEL=crawl["log_level"],
        HKMA_MIRRORS=dict(mirrors),
    )
    return settings
