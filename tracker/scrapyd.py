"""Crawls as scrapyd jobs (`[crawl] engine = "scrapyd"`): the same spiders with the same
arguments, on the nodes of `[scrapyd]`, the history still written by this process alone.

Each source's spider is one job, scheduled with `schedule.json` under an id that names the run
and the source (a job is never taken for another run's), its listings and options as JSON
arguments, this config's crawl settings as `setting=` pairs, and the result extension on
(spiders.crawl.ResultExtension), which writes the result file the local engine writes beside
the job's items feed, where scrapyd serves it (`/items/<project>/<spider>/<job>.result.json`).
scrapyd reports no outcome (../shared/hk-regulators.md §4.4): `status.json` is polled until the
job is finished, and the result file decides. A job pending past `pending_timeout`, running past
`job_timeout` or the run's deadline is cancelled; a node that does not answer, a job it does not
know, a job finished without its result: each is that source's crawl failing, with the reason,
which makes its listings unhealthy (nothing is removed).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiders import settings as project_settings
from spiders.crawl import spider_class
from tracker.config import Config, ScrapydSettings
from tracker.results import CrawlResult, ResultError, read_result
from tracker.sources import SOURCES

logger = logging.getLogger(__name__)

RESULT_EXTENSION = {"spiders.crawl.ResultExtension": 0}
REQUEST_TIMEOUT = 30  # seconds for one call to a node


class ScrapydError(Exception):
    """A node did not answer, or answered with an error."""


@dataclass
class Job:
    node: str
    spider: str
    id: str
    scheduled_at: float
    started_at: float | None = None


class Node:
    """scrapyd's JSON API on one node (basic auth from the environment, if configured)."""

    def __init__(self, url: str, settings: ScrapydSettings) -> None:
        self.url = url.rstrip("/")
        self.project = settings.project
        user = os.environ.get(settings.username_env, "") if settings.username_env else ""
        password = os.environ.get(settings.password_env, "") if settings.password_env else ""
        token = base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""
        self.headers = {"Authorization": f"Basic {token}"} if token else {}

    def call(
        self,
        path: str,
        data: list[tuple[str, str]] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(f"{self.url}/{path}", data=body, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise ScrapydError(f"{self.url}/{path}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ScrapydError(f"{self.url}: unreachable ({reason})") from None
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise ScrapydError(f"{self.url}/{path}: {message}")
        return answer

    def fetch(self, path: str) -> bytes | None:
        """A file the node serves (a job's result); None if it has none."""
        request = urllib.request.Request(f"{self.url}/{path}", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise ScrapydError(f"{self.url}/{path}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ScrapydError(f"{self.url}: unreachable ({reason})") from None


def node_states(settings: ScrapydSettings, timeout: float = 2.0) -> list[dict[str, Any]]:
    """What each node answers now (`daemonstatus.json`: its pending, running and finished
    jobs), or why it does not: what `status` shows."""
    states = []
    for url in settings.urls:
        try:
            answer = Node(url, settings).call("daemonstatus.json", timeout=timeout)
        except ScrapydError as error:
            states.append({"node": url, "ok": False, "answer": str(error)})
            continue
        counts = {k: answer.get(k) for k in ("pending", "running", "finished")}
        states.append({"node": url, "ok": True, "answer": counts})
    return states


def setting_pairs(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """The crawl settings that differ from the project's, as `setting=NAME=VALUE` pairs
    (tables and lists as JSON, which Scrapy reads back), and the result extension."""
    pairs = []
    for name, value in {**settings, "EXTENSIONS": RESULT_EXTENSION}.items():
        if getattr(project_settings, name, None) == value and name != "EXTENSIONS":
            continue
        text = json.dumps(value) if isinstance(value, dict | list | tuple) else str(value)
        pairs.append(("setting", f"{name}={text}"))
    return pairs


def crawl_on_scrapyd(
    config: Config,
    spiders: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    workdir: Path,
    job_key: str,
    deadline_at: float | None,
) -> dict[str, CrawlResult | None]:
    """Run `spiders` (name -> spider path, listings and options) as jobs; each one's result,
    or `{"finish_reason": why}` where there is none."""
    nodes = [Node(url, config.scrapyd) for url in config.scrapyd.urls]
    results: dict[str, CrawlResult | None] = {}
    jobs: dict[str, tuple[Node, Job]] = {}
    saved_to: dict[str, Path] = {}  # where the files a job saves come back to
    for n, (name, spec) in enumerate(spiders.items()):
        node = nodes[n % len(nodes)]
        spider = str(spider_class(spec["spider"]).name)
        job = Job(node.url, spider, f"{job_key}-{name}", time.monotonic())
        options = dict(spec.get("options", {}))
        if options.get("output"):  # a folder of this host: the job saves beside its feed
            saved_to[name] = Path(options.pop("output"))
        data = [
            ("project", node.project),
            ("spider", spider),
            ("jobid", job.id),
            ("listings", json.dumps(spec["listings"])),
            ("options", json.dumps(options)),
            *setting_pairs(settings),
        ]
        try:
            node.call("schedule.json", data)
        except ScrapydError as error:
            results[name] = {"finish_reason": f"scrapyd: {error}"}
            continue
        jobs[name] = (node, job)
    limits = config.scrapyd
    while jobs:
        for name, (node, job) in list(jobs.items()):
            try:
                state = node.call(f"status.json?job={job.id}&project={node.project}")
            except ScrapydError as error:
                results[name] = {"finish_reason": f"scrapyd: {error}"}
                del jobs[name]
                continue
            now = time.monotonic()
            current = state.get("currstate")
            why = ""
            if current == "finished":
                path = workdir / "results" / f"{name}.json"
                results[name] = _collect(node, job, path, name in SOURCES, saved_to.get(name))
                del jobs[name]
                continue
            if current is None:
                why = f"scrapyd {node.url} does not know job {job.id}"
            elif current == "pending" and now - job.scheduled_at > limits.pending_timeout:
                why = f"job {job.id} still pending after {limits.pending_timeout} s on {node.url}"
            elif current == "running":
                job.started_at = job.started_at or now
                if now - job.started_at > limits.job_timeout:
                    why = f"job {job.id} cancelled after {limits.job_timeout} s on {node.url}"
            if not why and deadline_at is not None and now >= deadline_at:
                why = f"run deadline reached: job {job.id} cancelled on {node.url}"
            if why:
                if current is not None:
                    _cancel(node, job)
                results[name] = {"finish_reason": why}
                del jobs[name]
        if jobs:
            time.sleep(limits.poll_interval)
    return results


def _cancel(node: Node, job: Job) -> None:
    with contextlib.suppress(ScrapydError):  # the job is not trusted either way
        node.call("cancel.json", [("project", node.project), ("job", job.id), ("signal", "KILL")])


def _collect(
    node: Node, job: Job, path: Path, documents: bool, saved_to: Path | None
) -> CrawlResult:
    """The job's result file, fetched before scrapyd's `jobs_to_keep` can rotate it away, and
    the files it saved (the linked documents' PDFs) into `saved_to`, where the PDF readers of
    this host read them; one that cannot be fetched is left out (its document stays due)."""
    try:
        body = node.fetch(f"items/{node.project}/{job.spider}/{job.id}.result.json")
    except ScrapydError as error:
        return {"finish_reason": f"scrapyd: {error}"}
    if body is None:
        return {
            "finish_reason": f"job {job.id} finished on {node.url} without its result "
            "(killed, or the node has no items_dir)"
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    try:
        result = read_result(path, documents=documents)
    except ResultError as error:
        return {"finish_reason": f"unreadable result of job {job.id} ({error})"}
    if saved_to is not None:
        result["items"] = _bring_back(node, job, result.get("items", []), saved_to)
    return result


def _bring_back(
    node: Node, job: Job, items: list[dict[str, Any]], folder: Path
) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for item in items:
        saved = item.get("pdf_file")
        if saved:
            name = Path(str(saved)).name  # `<job>--<file>`, beside the job's feed
            try:
                body = node.fetch(f"items/{node.project}/{job.spider}/{name}")
            except ScrapydError as error:
                logger.warning("document %s: %s", item.get("document_id"), error)
                continue
            if body is None:
                logger.warning("document %s: %s not on %s", item.get("document_id"), name, node.url)
                continue
            local = folder / name
            local.write_bytes(body)
            item = {**item, "pdf_file": str(local)}
        kept.append(item)
    return kept
