"""Crawl process entry point: `python -m spiders.crawl JOB.json`.

Runs the spiders a job names in one Twisted reactor (which cannot be restarted, hence one
process per crawl) and writes, per spider, `<output>/<name>.json` holding its items, the outcome
of every listing and the crawl stats. A file exists only for a spider that closed: its absence
tells the tracker the crawl died.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scrapy import Spider, signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.exceptions import NotConfigured

from spiders.items import ListingOutcome
from spiders.logs import LOG_FORMAT_ENV, JsonLogFormatter
from spiders.normalize import strip_unprintable

# The exit status of a crawl that could not write a result for want of space (errno ENOSPC).
NO_SPACE = 28


def spider_class(path: str) -> type[Spider]:
    """The spider a job names as "module:Class" (only spiders of this package)."""
    module, _, name = path.partition(":")
    if not module.startswith("spiders."):
        raise ValueError(f"not a spider of this package: {path!r}")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, Spider)):
        raise ValueError(f"not a spider: {path!r}")
    return found


class ResultWriter:
    """Collects one crawler's items and outcomes; writes them with the stats when it closes."""

    def __init__(self, crawler: Crawler, path: Path) -> None:
        self.crawler = crawler
        self.path = path
        self.items: list[dict[str, Any]] = []
        self.outcomes: list[dict[str, Any]] = []
        self.write_error: OSError | None = None
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    def item_scraped(self, item: object) -> None:
        if isinstance(item, ListingOutcome):
            self.outcomes.append(dataclasses.asdict(item))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            self.items.append(printable(dataclasses.asdict(item)))

    def spider_closed(self, reason: str) -> None:
        stats = dict(self.crawler.stats.get_stats()) if self.crawler.stats else {}
        started = stats.get("start_time")
        if isinstance(started, datetime) and "elapsed_time_seconds" not in stats:
            # Scrapy adds the elapsed time after this handler runs: the duration `runs` shows.
            stats["elapsed_time_seconds"] = (datetime.now(UTC) - started).total_seconds()
        result = {
            "finish_reason": reason,
            "items": self.items,
            "outcomes": self.outcomes,
            "stats": stats,
        }
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(result, default=str, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as error:  # the process's exit status says it (a signal handler's
            # exception would only be logged by Scrapy)
            tmp.unlink(missing_ok=True)
            logging.getLogger(__name__).error("could not write %s: %s", self.path, error)
            self.write_error = error


def job_feed(feeds: dict[str, Any]) -> Path | None:
    """A scrapyd job's items feed (its `items_dir` gives `<items_dir>/<project>/<spider>/
    <job>.jl`): what the job writes beside it, scrapyd serves under /items/ as it serves the
    feed, and rotates with it (`jobs_to_keep`)."""
    for uri in feeds:
        parts = urlsplit(str(uri))
        if parts.scheme in ("file", "") and parts.path.endswith(".jl"):
            return Path(unquote(parts.path))
    return None


def result_beside_feed(feeds: dict[str, Any]) -> Path | None:
    """Where a scrapyd job writes its result: `<job>.result.json` beside its feed."""
    feed = job_feed(feeds)
    return feed.with_name(feed.stem + ".result.json") if feed else None


class ResultExtension:
    """The crawl process's result file, written by a spider a scrapyd job runs (enabled by the
    job's `EXTENSIONS` setting): items, outcomes, stats and finish reason, as the tracker reads
    them whichever engine crawled."""

    def __init__(self, writer: ResultWriter) -> None:
        self.writer = writer  # held here: Scrapy holds signal receivers by weak reference

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ResultExtension:
        path = result_beside_feed(crawler.settings.getdict("FEEDS"))
        if path is None:
            raise NotConfigured("no items feed to write the result beside (scrapyd items_dir)")
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(ResultWriter(crawler, path))


def printable(value: Any) -> Any:
    """`value` with every string in it, however deep, stripped of control and bidi-override
    characters: whatever a spider missed, nothing of the kind leaves the crawl."""
    if isinstance(value, str):
        return strip_unprintable(value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value


def run_job(job: dict[str, Any]) -> int:
    """Run the job's spiders; the process's exit status (NO_SPACE: a result could not be
    written for want of space)."""
    output = Path(job["output"])
    output.mkdir(parents=True, exist_ok=True)
    # Our handler, installed before Scrapy logs anything (its versions at INFO come first):
    # every line of this process in the format the tracker was asked for.
    handler = logging.StreamHandler()
    if os.environ.get(LOG_FORMAT_ENV) == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        text = "%(asctime)s [%(name)s] %(levelname)s: %(message)s"
        handler.setFormatter(logging.Formatter(text, "%Y-%m-%d %H:%M:%S"))
    level = job["settings"].get("LOG_LEVEL", "WARNING")
    handler.setLevel(level)
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(level)
    process = CrawlerProcess(settings={**job["settings"], "LOG_INSTALL_ROOT_HANDLER": False})
    # A failed robots.txt fetch is logged with a full traceback, and the page behind it then
    # fails the same way and is reported per listing: the traceback adds nothing. (Set after
    # CrawlerProcess, which configures logging.)
    logging.getLogger("scrapy.downloadermiddlewares.robotstxt").setLevel(logging.CRITICAL)
    # Likewise "Gave up retrying": each listing that fails is reported once, by its spider.
    logging.getLogger("scrapy.downloadermiddlewares.retry").setLevel(logging.CRITICAL)
    writers = []  # kept alive here: Scrapy holds signal receivers by weak reference
    for name, spec in job["spiders"].items():
        crawler = process.create_crawler(spider_class(spec["spider"]))
        writers.append(ResultWriter(crawler, output / f"{name}.json"))
        process.crawl(crawler, listings=spec["listings"], options=spec.get("options", {}))
    process.start()
    errors = [w.write_error for w in writers if w.write_error is not None]
    if any(e.errno == errno.ENOSPC for e in errors):
        return NO_SPACE
    return 1 if errors else 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m spiders.crawl JOB.json\n")
        return 2
    return run_job(json.loads(Path(argv[0]).read_text(encoding="utf-8")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
