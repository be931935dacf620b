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
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from spiders import settings as project_settings  # Scrapy's modules: only when crawling

    pairs = []
    for name, value in {**settings, "EXTENSIONS": RESULT_EXTENSION}.items():
        if getattr(project_settings, name, None) == value and name != "EXTENSIONS":
            continue
        text = json.dumps(value) if isinstance(value, dict | list | tuple) else str(value)
        pairs.append(("setting", f"{name}={text}"))
    return pairs


@dataclass
class Part:
    """A job to schedule: a crawl, or one part of a crawl given in parts."""

    name: str  # the crawl's name, or `<crawl>-<n>` for a part
    spider: str  # the spider's name, as scrapyd knows it
    listings: dict[str, Any]
    options: dict[str, Any]
    saved_to: Path | None  # where the files it saves come back to (this host's folder)
    documents: bool  # a source's crawl (its result holds documents)


def crawl_on_scrapyd(
    config: Config,
    spiders: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    workdir: Path,
    job_key: str,
    deadline_at: float | None,
) -> dict[str, CrawlResult | None]:
    """Run `spiders` (name -> spider path, listings and options) as jobs; each one's result,
    or `{"finish_reason": why}` where there is none. A crawl of many documents runs in parts
    over the nodes, one part at a time on each: a job's start makes scrapyd delete its spider's
    older files beyond `jobs_to_keep`, which must not be a part's not yet brought back."""
    from spiders.crawl import spider_class  # Scrapy's modules: only when crawling (not `status`)

    nodes = [Node(url, config.scrapyd) for url in config.scrapyd.urls]
    results: dict[str, CrawlResult | None] = {}
    queues: list[list[Part]] = [[] for _ in nodes]  # per node, what waits its turn there
    shards: dict[str, list[str]] = {}  # a crawl given in parts -> its parts' names
    turn = 0
    for name, spec in spiders.items():
        spider = str(spider_class(spec["spider"]).name)
        pieces = _shards(spec)
        names = [f"{name}-{n}" for n in range(len(pieces))] if len(pieces) > 1 else [name]
        if len(pieces) > 1:
            shards[name] = names
        for part_name, options in zip(names, pieces, strict=True):
            output = options.pop("output", None)
            queues[turn % len(nodes)].append(
                Part(
                    part_name,
                    spider,
                    spec["listings"],
                    options,
                    Path(output) if output else None,
                    name in SOURCES,
                )
            )
            turn += 1
    jobs: dict[str, tuple[Node, Job, Part]] = {}

    sharded = {part for names in shards.values() for part in names}

    def start(index: int) -> None:
        """Schedule what waits on node `index`: a whole crawl at once, a part only when no
        other part runs there."""
        node, queue = nodes[index], queues[index]
        while queue:
            part = queue[0]
            busy = any(p.name in sharded and n is node for n, _, p in jobs.values())
            if part.name in sharded and busy:
                return
            queue.pop(0)
            job = Job(part.spider, f"{job_key}-{part.name}", time.monotonic())
            data = [
                ("project", node.project),
                ("spider", part.spider),
                ("jobid", job.id),
                ("listings", json.dumps(part.listings)),
                ("options", json.dumps(part.options)),
                *setting_pairs(settings),
            ]
            try:
                node.call("schedule.json", data)
            except ScrapydError as error:
                results[part.name] = {"finish_reason": f"scrapyd: {error}"}
                continue
            jobs[part.name] = (node, job, part)

    for index in range(len(nodes)):
        start(index)
    limits = config.scrapyd
    while jobs:
        for name, (node, job, part) in list(jobs.items()):
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
                results[name] = _collect(node, job, path, part.documents, part.saved_to)
                del jobs[name]
                start(nodes.index(node))
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
                start(nodes.index(node))
        if jobs:
            time.sleep(limits.poll_interval)
    for queue in queues:  # parts never started: their node stopped answering, or time ran out
        for part in queue:
            results[part.name] = {
                "finish_reason": "not started (its node stopped answering, or the run's "
                "deadline came): its documents stay due"
            }
    for name, names in shards.items():
        results[name] = _merged([results.pop(part) or {"finish_reason": None} for part in names])
    return results


# A job's options travel as one argument of its process's command line, which Linux caps at
# 128 KiB: a crawl of more documents than fit in this many bytes runs in parts. (Parts also
# spread one crawl over the nodes; each costs a job's start, a few seconds.)
PART_BYTES = 64 * 1024


def _shards(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A crawl's options, in parts whose documents take at most PART_BYTES as JSON (one part
    if it has no documents list)."""
    options = dict(spec.get("options", {}))
    documents = options.get("documents")
    if not isinstance(documents, list) or len(json.dumps(options)) <= PART_BYTES:
        return [options]
    parts: list[list[Any]] = [[]]
    size = 0
    for document in documents:
        length = len(json.dumps(document)) + 2
        if parts[-1] and size + length > PART_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(document)
        size += length
    return [{**options, "documents": part} for part in parts]


def _merged(parts: list[CrawlResult]) -> CrawlResult:
    """One result of a crawl run in parts: every part's items; the first unclean finish (the
    fetches of a part without a result are simply absent: they stay due)."""
    unclean = [p.get("finish_reason") for p in parts if p.get("finish_reason") != "finished"]
    stats: dict[str, Any] = {}
    for part in parts:
        for key, value in (part.get("stats") or {}).items():
            if isinstance(value, int | float) and isinstance(stats.get(key, 0), int | float):
                stats[key] = stats.get(key, 0) + value
            else:
                stats.setdefault(key, value)
    return {
        "finish_reason": unclean[0] if unclean else "finished",
        "items": [item for part in parts for item in part.get("items", [])],
        "outcomes": [o for part in parts for o in part.get("outcomes", [])],
        "stats": stats,
    }


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


@contextlib.contextmanager
def local_node(folder: Path, **options: object) -> Iterator[str]:
    """A scrapyd node on this machine, started as README's "Scaling out" says (in a folder
    whose scrapy.cfg names the project's settings, no eggs), on a free port of 127.0.0.1; its
    URL. For the tests and benches."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = {
        "bind_address": "127.0.0.1",
        "http_port": port,
        "items_dir": folder / "items",
        "logs_dir": folder / "logs",
        "dbs_dir": folder / "dbs",
        "eggs_dir": folder / "eggs",
        "poll_interval": 0.2,
        "jobs_to_keep": 5,
        "jobstorage": "scrapyd.jobstorage.SqliteJobStorage",
        **options,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scrapy.cfg").write_text(
        "[settings]\ndefault = spiders.settings\n\n[scrapyd]\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items()),
        encoding="utf-8",
    )
    url = f"http://127.0.0.1:{port}"
    with (folder / "scrapyd.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scrapyd"], cwd=folder, stdout=log, stderr=log
        )
        try:
            for _ in range(150):
                try:
                    Node(url, ScrapydSettings(urls=(url,))).call("daemonstatus.json", timeout=1)
                    break
                except ScrapydError:
                    time.sleep(0.1)
            else:
                tail = (folder / "scrapyd.log").read_text(errors="replace")[-2000:]
                raise ScrapydError(f"scrapyd did not start: {tail}")
            yield url
        finally:
            process.terminate()
            process.wait(10)
