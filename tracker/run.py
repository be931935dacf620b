"""One tracker run: crawl in a child process, judge and store each source, write the digest."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from spiders.crawl import NO_SPACE
from spiders.documents import pdf_file_name
from spiders.normalize import HONG_KONG
from spiders.settings import settings_for
from storage.db import open_db, utc_now, write_transaction
from storage.history import (
    apply_document_plan,
    apply_plan,
    close_interrupted_runs,
    fetch_candidates,
    finish_run,
    listing_states,
    load_stored,
    mark_unfetchable,
    start_run,
)
from storage.links import update_links
from storage.records import ChangeEvent, DocumentPlan, SourcePlan, StoredDocument
from storage.rule_records import documents_without_record
from tracker.children import die_with_parent
from tracker.config import Config, DocumentSettings
from tracker.delivery import (
    deliver,
    queue_for_subscribers,
    raise_operator_alerts,
    raise_withdrawal_alert,
    stuck_deliveries,
)
from tracker.detect import ListingHistory, plan_source
from tracker.document_text import PdfReaders, PdfText
from tracker.documents import (
    MAX_UNPARSABLE_ATTEMPTS,
    plan_documents,
    revalidate_before,
    select_fetches,
    unfetchable,
)
from tracker.exit_codes import ExitStatus
from tracker.lifecycle import (
    announce_supersessions,
    carry_standing,
    left_register,
    settle_departures,
)
from tracker.results import CrawlResult, ResultError, read_result
from tracker.rule_records import links_for, update_records
from tracker.scrapyd import crawl_on_scrapyd
from tracker.sources import HELPER_SPIDERS, SOURCES
from tracker.status import stale_sweeps
from tracker.sweep import Sweep, choose_sweep, describe
from tracker.tagging import Tagger

logger = logging.getLogger(__name__)
WORKDIR_PREFIX = "hkma-tracker-"
# Landing pages read per run for documents gone from BRDR's register; the rest wait a sweep.
MAX_LOOKUPS_PER_RUN = 100


@dataclass(frozen=True)
class Deadline:
    """A run's overall time limit."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


class UnknownSourceError(ValueError):
    """`--source` named a source the config does not define."""


@dataclass
class RunReport:
    """What one run did: a plan per source, the digest written, a delivery failure if any."""

    run_id: int | None
    plans: list[SourcePlan] = field(default_factory=list)
    documents: DocumentPlan | None = None
    digest: str | None = None
    delivery_error: str | None = None
    # Work left for the next run (the deadline came, a helper process died), one line each.
    unfinished: list[str] = field(default_factory=list)
    # What names this run's scrapyd jobs besides its id: unique across databases sharing a node.
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def job_key(self) -> str:
        return f"run{self.run_id if self.run_id is not None else 'dry'}-{self.token}"

    @property
    def exit_status(self) -> ExitStatus:
        if self.delivery_error:
            return ExitStatus.DELIVERY_FAILED
        if any(not p.healthy for p in self.plans) or self.unfinished:
            return ExitStatus.SOURCE_UNHEALTHY
        return ExitStatus.OK

    @property
    def events(self) -> list[ChangeEvent]:
        documents = self.documents.events if self.documents else []
        return [e for p in self.plans for e in p.events] + documents


def select_sources(config: Config, requested: list[str] | None) -> list[str]:
    if not requested:
        return config.enabled_sources()
    unknown = [s for s in requested if s not in config.sources]
    if unknown:
        known = ", ".join(config.sources)
        raise UnknownSourceError(f"unknown source {unknown[0]!r} (known: {known})")
    return list(dict.fromkeys(requested))


def crawl(
    config: Config,
    spiders: dict[str, dict[str, Any]],
    workdir: Path,
    deadline: Deadline | None = None,
    while_running: Callable[[], None] | None = None,
    job_key: str | None = None,
) -> dict[str, CrawlResult | None]:
    """Run `spiders` (name -> listings and options) in one child process; each one's result.

    The child is killed at `process_timeout`, or sooner at the run's deadline. Meanwhile
    `while_running` is called about every tenth of a second (to read what has arrived so
    far); it may take up to that tenth itself. With `[crawl] engine = "scrapyd"`, the crawls
    given a `job_key` (what names their jobs: the sources' and the linked documents') run as
    scrapyd jobs instead (tracker/scrapyd.py), the files they save brought back here."""
    sources = list(spiders)
    settings = settings_for(dataclasses.asdict(config.crawl), config.mirrors)
    # Each spider by its class ("module:Class"): the crawl process or job loads what it is given.
    described = {
        name: {"spider": SOURCES[name].spider if name in SOURCES else HELPER_SPIDERS[name], **spec}
        for name, spec in spiders.items()
    }
    if config.crawl.engine == "scrapyd" and job_key is not None:
        ends_at = time.monotonic() + deadline.remaining() if deadline is not None else None
        return crawl_on_scrapyd(config, described, settings, workdir, job_key, ends_at)
    job = {"output": str(workdir / "results"), "settings": settings, "spiders": described}
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    timeout: float = config.crawl.process_timeout
    why = f"crawl process killed after {timeout} s"
    if deadline is not None and deadline.remaining() < timeout:
        timeout = max(deadline.remaining(), 0.1)
        why = f"run deadline of {deadline.seconds:g} s reached"
    failure = None
    try:
        env = dict(os.environ)
        if config.crawl.ca_bundle:
            env["SSL_CERT_FILE"] = config.crawl.ca_bundle
        with subprocess.Popen(
            [sys.executable, "-m", "spiders.crawl", str(job_path)],
            env=env,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        ) as child:
            ends_at = time.monotonic() + timeout
            while child.poll() is None:
                if time.monotonic() >= ends_at:
                    child.kill()
                    raise subprocess.TimeoutExpired(child.args, timeout)
                tick_ends = min(time.monotonic() + 0.1, ends_at)
                if while_running:
                    while_running()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(max(0.0, tick_ends - time.monotonic()))
        if child.returncode == NO_SPACE:
            failure = f"no space left on device in the temporary folder {workdir.parent}"
        elif child.returncode != 0:
            failure = f"crawl process exited with status {child.returncode}"
    except subprocess.TimeoutExpired:
        failure = why
    results: dict[str, CrawlResult | None] = {}
    for name in sources:
        path = workdir / "results" / f"{name}.json"
        if path.exists():
            try:
                results[name] = read_result(path, documents=name in SOURCES)
            except ResultError as error:  # not trusted in part: the crawl failed
                logger.error("crawl result of %s unreadable: %s", name, error)
                results[name] = {"finish_reason": f"unreadable result ({error})"}
        else:
            results[name] = {"finish_reason": failure} if failure else None
    return results


def run(
    config: Config,
    db_path: str | Path,
    sources: list[str] | None = None,
    alerts: bool = True,
    dry_run: bool = False,
    full_sweep: bool = False,
    deadline: float | None = None,
    poll: bool = False,
) -> RunReport:
    """Crawl, detect and store; with `alerts`, deliver pending changes as a digest.

    `full_sweep` asks sources with an incremental mode (brdr, press_releases) for everything.
    `poll` reads only the cheap listings of the sources that have them (`Source.poll`), and
    of those only what an incremental read would: what needs a full read waits for a run.
    A dry run stores nothing (no run row, no documents, no events) and fetches no documents.
    """
    selected = select_sources(config, sources)
    if poll:
        selected = [name for name in selected if SOURCES[name].poll is not None]
    tagger = Tagger(config.taxonomy)
    seconds = config.run.deadline if deadline is None else deadline
    limit = Deadline(seconds) if seconds else None
    db = open_db(db_path)
    try:
        command = "poll" if poll else "run" if alerts else "crawl"
        if not dry_run:
            _clean_up_after_killed_runs(db)
        report = RunReport(None if dry_run else start_run(db, command))
        try:
            _crawl_and_record(config, db, selected, report, full_sweep, tagger, limit, poll)
            if report.run_id is not None and config.documents.enabled:
                if _out_of_time(limit):
                    report.unfinished.append("documents: not read (run deadline reached)")
                else:
                    _fetch_documents(config, db, selected, report, tagger, limit)
            if report.run_id is not None:
                # A healthy incremental run must not call a source whose sweeps fail recovered.
                stale = stale_sweeps(db, config, datetime.now(UTC))
                with write_transaction(db):
                    touched = update_links(db, links_for(db), report.run_id)
                    if touched or documents_without_record(db):  # keys come from the links
                        update_records(db)
                    raise_operator_alerts(db, config, selected, stale)
            if alerts and report.run_id is not None:
                if _out_of_time(limit):
                    report.unfinished.append("delivery: not attempted (run deadline reached)")
                else:
                    delivery = deliver(db, config, time_left=limit.remaining if limit else None)
                    report.digest = delivery.sent[0] if delivery.sent else None
                    report.delivery_error = "; ".join(delivery.failed) or None
            if report.run_id is not None:
                # Whether or not this run tried: a message that keeps failing is not "0".
                report.delivery_error = report.delivery_error or stuck_deliveries(db)
        except BaseException:
            if report.run_id is not None:
                # Best effort: if the database is what failed, the next run closes this row.
                with contextlib.suppress(sqlite3.Error):
                    finish_run(db, report.run_id, "failed", int(ExitStatus.ERROR))
            raise
        for line in report.unfinished:
            logger.error("unfinished, left for the next run: %s", line)
        if report.run_id is not None:
            status = "ok" if report.exit_status == ExitStatus.OK else "degraded"
            finish_run(
                db, report.run_id, status, int(report.exit_status), "; ".join(report.unfinished)
            )
        return report
    finally:
        db.close()


def _workdir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for one phase, named after this process so that the folders of a
    killed run can be told from those of a live one."""
    return tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-{kind}-")


def _clean_up_after_killed_runs(db: sqlite_utils.Database) -> None:
    """What a run killed part way left: its row still 'running', its temporary folders (with
    up to `max_per_run` downloaded PDFs). Called under the run lock, before a run starts."""
    left = [row[0] for row in db.execute("SELECT id FROM runs WHERE status = 'running'")]
    if closed := close_interrupted_runs(db):
        logger.warning("closed %d run(s) left running by a process that died", closed)
    if left:  # what they stored, linked now (a run links its documents at its end)
        links = links_for(db)
        with write_transaction(db):
            for run_id in left:
                update_links(db, links, run_id)
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        owner = re.match(rf"{WORKDIR_PREFIX}(\d+)-", folder.name)
        if owner and not _process_exists(int(owner.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            logger.warning("removed %s, left by a run that died", folder)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _out_of_time(deadline: Deadline | None) -> bool:
    return deadline is not None and deadline.remaining() <= 0


def _sweeps(
    config: Config, source: str, states: dict[str, dict[str, Any]], requested: bool, poll: bool
) -> dict[str, Sweep]:
    """How each listing of `source` this run reads is read (sources without an incremental
    mode always read whole). A poll reads the source's cheap listings, and of an incremental
    source only those an incremental read will do for: a listing that needs a full read (no
    baseline yet, a new year's window) waits for the next run, which reads it whole."""
    listings, described = config.listings(source), SOURCES[source]
    cheap = set(described.poll.listings(config.sources[source])) if described.poll else set()
    if poll and cheap:
        listings = {name: url for name, url in listings.items() if name in cheap}
    if not described.incremental:
        return {url: Sweep(True) for url in listings.values()}
    key = described.date_group
    group = config.sources[source][key] if key else None
    now = datetime.now(UTC)
    sweeps = {
        url: choose_sweep(states.get(url), now, requested, group) for url in listings.values()
    }
    return {url: s for url, s in sweeps.items() if not (poll and s.full)}


def _spider_options(
    config: Config,
    source: str,
    sweeps: dict[str, Sweep],
    states: dict[str, dict[str, Any]],
    poll: bool,
) -> dict[str, Any]:
    options = config.spider_options(source, full={url for url, s in sweeps.items() if s.full})
    described = SOURCES[source]
    lasts = [(states.get(url) or {}).get("last_healthy_at") for url in sweeps]
    if described.since and not any(s.full for s in sweeps.values()) and all(lasts):
        # Page back only to a little before the last healthy run.
        options["since"] = described.since(config.sources[source], min(map(str, lasts)))
    if poll and described.poll is not None:
        options.update(described.poll.options(config.sources[source]))
    return options


def _crawl_and_record(
    config: Config,
    db: sqlite_utils.Database,
    selected: list[str],
    report: RunReport,
    full_sweep: bool,
    tagger: Tagger,
    deadline: Deadline | None,
    poll: bool = False,
) -> None:
    states = {name: listing_states(db, name) for name in selected}
    sweeps = {name: _sweeps(config, name, states[name], full_sweep, poll) for name in selected}
    if poll:  # a source with nothing to poll yet is not crawled at all
        selected = [name for name in selected if sweeps[name]]
    spiders = {
        name: {
            "listings": {n: u for n, u in config.listings(name).items() if u in sweeps[name]},
            "options": _spider_options(config, name, sweeps[name], states[name], poll),
        }
        for name in selected
    }
    with _workdir("crawl") as workdir:
        results = crawl(config, spiders, Path(workdir), deadline, job_key=report.job_key)
    for source in selected:
        record_source(
            config,
            db,
            source,
            results[source],
            states[source],
            sweeps[source],
            report,
            tagger,
            deadline,
        )


def record_source(
    config: Config,
    db: sqlite_utils.Database,
    source: str,
    result: CrawlResult | None,
    states: dict[str, dict[str, Any]],
    sweeps: dict[str, Sweep],
    report: RunReport,
    tagger: Tagger,
    deadline: Deadline | None = None,
) -> SourcePlan:
    """Decide what one source's crawl `result` means against the store, and write it (in one
    transaction, unless the run is a dry run): the step whose cost must follow what changed."""
    stored = load_stored(db, source)
    stored.prefetch(f"{source}:{item['key']}" for item in (result or {}).get("items", []))
    history = {
        url: ListingHistory(
            state.get("last_healthy_items"),
            state.get("last_full_items"),
            sweeps[url].baseline_before if url in sweeps else None,
        )
        for url, state in states.items()
    }
    plan = plan_source(
        source,
        carry_standing(result, stored, source),
        list(sweeps),  # the listings this run read
        stored,
        history,
        config.health,
    )
    if SOURCES[source].incremental:
        names = {url: name for name, url in config.listings(source).items()}
        plan.sweep, plan.sweep_reason = describe(sweeps, names)
    announce_supersessions(plan, stored)
    departed = left_register(plan, stored) if SOURCES[source].register else []
    if departed and report.run_id is not None:
        lookups = _look_up(config, departed, deadline)
        asked = min(len(departed), MAX_LOOKUPS_PER_RUN)
        if len(lookups) < asked:
            report.unfinished.append(
                f"{source}: {asked - len(lookups)} of {asked} register lookups gave no "
                "result; those documents wait for the next full sweep"
            )
        settle_departures(
            plan,
            stored,
            departed,
            lookups,
            datetime.now(HONG_KONG).date().isoformat(),
            config.health.max_withdrawals_per_sweep,
        )
    report.plans.append(plan)
    if report.run_id is not None:
        with write_transaction(db):
            crawled = result or {}
            figures = {
                "stats": crawled.get("stats", {}),
                "finish_reason": crawled.get("finish_reason"),
            }
            apply_plan(db, plan, report.run_id, figures, tagger)
            queue_for_subscribers(db, config, report.run_id)
            raise_withdrawal_alert(db, config, plan)
    _log_source(plan)
    return plan


def _look_up(
    config: Config, departed: list[StoredDocument], deadline: Deadline | None
) -> dict[str, dict[str, Any]]:
    """What the landing pages of documents gone from the register say, by document id."""
    asked = departed[:MAX_LOOKUPS_PER_RUN]
    options = {"documents": [{"id": d.id, "url": d.head.url} for d in asked]}
    with _workdir("lookup") as workdir:
        spiders = {"brdr_lookup": {"listings": {}, "options": options}}
        result = crawl(config, spiders, Path(workdir), deadline)["brdr_lookup"] or {}
    found = {item["document_id"]: item for item in result.get("items", [])}
    for doc_id, item in found.items():
        if not item["ok"]:
            logger.warning("brdr: looking up %s: %s", doc_id, item["reason"])
    if len(departed) > len(asked):
        logger.warning(
            "brdr: %d documents left the register, %d looked up this run; the rest wait for "
            "the next full sweep",
            len(departed),
            len(asked),
        )
    return found


def _fetch_documents(
    config: Config,
    db: sqlite_utils.Database,
    sources: list[str],
    report: RunReport,
    tagger: Tagger,
    deadline: Deadline | None,
) -> None:
    """Fetch the linked documents that are due, extract their text, record what changed."""
    assert report.run_id is not None
    settings = config.documents
    now = datetime.now(UTC)
    stale_before = revalidate_before(now, settings.revalidate_after_days)
    # Room for links that turn out not fetchable (recorded now, not asked for again).
    candidates = fetch_candidates(
        db, sources, stale_before, MAX_UNPARSABLE_ATTEMPTS, 2 * settings.max_per_run
    )
    odd_links = unfetchable(list(candidates.values()))
    if odd_links:
        with write_transaction(db):
            mark_unfetchable(db, odd_links, utc_now())
        for doc_id, reason in odd_links.items():
            logger.warning("documents: %s: %s", doc_id, reason)
    requests = select_fetches(
        list(candidates.values()),
        now,
        settings.revalidate_after_days,
        settings.max_per_run,
    )
    if not requests:
        if odd_links:
            report.documents = DocumentPlan(counts={"not fetchable": len(odd_links)})
        return
    with _workdir("documents") as workdir:
        pdf_folder = Path(workdir) / "pdf"
        options = {
            "documents": requests,
            "output": str(pdf_folder),
            "pdf_max_bytes": settings.pdf_max_bytes,
            "html_max_bytes": settings.html_max_bytes,
        }
        spiders = {"documents": {"listings": {}, "options": options}}
        readers = _pdf_readers(settings, deadline)
        read_arrived = functools.partial(
            _read_arrived_pdfs,
            readers,
            pdf_folder,
            {pdf_file_name(r["id"]): r["id"] for r in requests},
        )
        key = report.job_key
        found = crawl(config, spiders, Path(workdir), deadline, read_arrived, job_key=key)
        result = found["documents"] or {}
        fetched, pdf_texts, unread = _read_pdfs(result.get("items", []), readers)
    if unread:  # their fetch results are dropped: still due, read by the next run
        report.unfinished.append(
            f"documents: PDFs not read: {unread} (run deadline reached); read next run"
        )
    plan = plan_documents(candidates, fetched, pdf_texts, utc_now(), settings.max_text_chars)
    if odd_links:
        plan.counts["not fetchable"] = len(odd_links)
    report.documents = plan
    with write_transaction(db):
        apply_document_plan(db, plan, report.run_id, candidates, tagger, links_for(db))
        queue_for_subscribers(db, config, report.run_id)
    missing = len(requests) - len(fetched) - unread
    if missing:  # the crawl died or was stopped part way: those stay due, fetched next run
        report.unfinished.append(
            f"documents: {missing} of {len(requests)} fetches gave no result: "
            + _no_result_reason(result)
        )
    logger.info("documents: %s", plan.counts)


def _no_result_reason(result: CrawlResult) -> str:
    """Why a documents crawl left fetches without a result, as far as it can tell."""
    stats = result.get("stats", {})
    if not_saved := stats.get("documents/not_saved"):
        return f"{not_saved} downloads could not be saved: {stats['documents/not_saved_reason']}"
    finish = result.get("finish_reason")
    if finish and finish != "finished":
        return f"crawl ended ({finish})"
    return (
        "the crawl process died"
        if not result
        else "the crawl gave nothing for them (its log says why)"
    )


def _pdf_readers(settings: DocumentSettings, deadline: Deadline | None) -> PdfReaders:
    stop_at = time.monotonic() + deadline.remaining() if deadline else None
    return PdfReaders(settings.pdf_timeout, settings.pdf_memory_mb, settings.pdf_workers, stop_at)


def _read_arrived_pdfs(readers: PdfReaders, folder: Path, owners: dict[str, str]) -> None:
    """Start reading the PDFs the crawl has written so far (it is still fetching others).
    `owners`: file name -> document id."""
    for path in folder.iterdir() if folder.is_dir() else []:
        doc_id = owners.get(path.name)
        if doc_id and doc_id not in readers.added:
            readers.add(doc_id, path)
    readers.poll(wait_s=0.1)


def _read_pdfs(
    fetched: list[dict[str, Any]], readers: PdfReaders
) -> tuple[list[dict[str, Any]], dict[str, PdfText], int]:
    """The text of each fetched PDF, within the run's deadline (most are read already, as
    they arrived during the crawl).

    Returns the fetch results to record, the texts, and how many PDFs the deadline left
    unread: those results are not recorded, so the documents stay due."""
    pdfs = {
        item["document_id"]: item["pdf_file"]
        for item in fetched
        if item["status"] == "fetched" and item["format"] == "pdf"
    }
    for doc_id, path in pdfs.items():
        readers.add(doc_id, path)
    texts, unread = readers.finish()
    unread = [doc_id for doc_id in unread if doc_id in pdfs]
    kept = [item for item in fetched if item["document_id"] not in unread]
    return kept, {k: v for k, v in texts.items() if k in pdfs}, len(unread)


def _log_source(plan: SourcePlan) -> None:
    counts = (
        f"{plan.count('new')} new, {plan.count('changed')} changed, {plan.count('removed')} removed"
    )
    if plan.sweep_reason:
        logger.info("%s: %s", plan.source, plan.sweep_reason)
    if plan.healthy:
        logger.info("%s: healthy, %d items, %s", plan.source, len(plan.seen), counts)
        return
    failed = [v for v in plan.verdicts if not v.healthy]
    for verdict in failed:  # each listing's failure once, in one wording
        logger.error("%s: %s: %s", plan.source, verdict.url, verdict.reason)
    logger.error(
        "%s: UNHEALTHY, %d of %d listings (%s)",
        plan.source,
        len(failed),
        len(plan.verdicts),
        counts,
    )
