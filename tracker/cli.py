"""The `hkma-tracker` command line: parses options, calls the library, prints results.

Data goes to stdout (`--json`: one object per line); logs go to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlite_utils

from alerts.subscribers import KIND_NAMES, UnknownName, resolve_names
from spiders.logs import LOG_FORMAT_ENV, JsonLogFormatter
from storage.db import (
    BUSY_TIMEOUT_MS,
    DatabaseProblem,
    check_database,
    open_db,
    open_readonly,
    write_transaction,
)
from storage.history import (
    count_baseline,
    document_history,
    find_document,
    list_changes,
    list_runs,
)
from storage.links import keys_like, linked_count, rebuild_links, rule_documents
from storage.outbox import outbox_status
from storage.records import KINDS
from storage.rule_records import (
    IDENTIFYING_LINKS,
    records_across_sources,
    records_holding,
    records_naming,
)
from storage.search import count_matches, fts_query, search
from storage.tags import retag
from tracker import __version__, render
from tracker.config import (
    CONFIG_ENV,
    DB_ENV,
    DEFAULT_DB,
    Config,
    ConfigError,
    load_config,
    vocabularies,
)
from tracker.delivery import (
    DeliveryReport,
    deliver,
    preview_digests,
    send_test_alert,
)
from tracker.exit_codes import ExitStatus
from tracker.lock import RunLocked, run_lock
from tracker.render import echo
from tracker.routing import subscribers_of
from tracker.rule_records import FILE_REFERENCE_AT, links_for, update_records
from tracker.rules import UnknownKey, rule_key, timeline
from tracker.schedule import job_list, serve
from tracker.status import dead_man_check, status_report
from tracker.tagging import Tagger

logger = logging.getLogger("hkma-tracker")
# Of a file reference, `rule` lists the records holding most of the documents linked to it
# most recently (so many of them, and so many records).
FILE_REFERENCE_READ = 5_000
FILE_REFERENCE_RECORDS = 20
BASELINE_COUNTED = 10_000  # `changes` counts the baseline events it leaves out up to this

# \b keeps click from rewrapping the list.
EXIT_CODES_HELP = "\b\nExit status of run, crawl and demo:\n" + "\n".join(
    f"  {int(status):<3} {status.meaning}" for status in ExitStatus
)


class UsageProblem(click.ClickException):
    """A config or argument problem: one clear line, exit 2."""

    exit_code = int(ExitStatus.USAGE)


@dataclass
class Context:
    config_path: str | None
    db_path: str

    def config(self, mirrors: tuple[str, ...] = ()) -> Config:
        try:
            config = load_config(self.config_path, list(mirrors))
        except ConfigError as error:
            raise UsageProblem(str(error)) from None
        return config

    def readonly_db(self) -> sqlite_utils.Database:
        with usable_database():
            return open_readonly(self.db_path)


@contextlib.contextmanager
def usable_database() -> Iterator[None]:
    """A database file that cannot be used is one line naming it, and exit 2."""
    try:
        yield
    except DatabaseProblem as error:
        raise UsageProblem(str(error)) from None


@contextlib.contextmanager
def exclusive_db(obj: Context, create: bool = False) -> Iterator[sqlite_utils.Database]:
    """The database with the run lock held, so that no two writers deliver or retag at once
    (exit 75 while another holds it). Only `create` makes a database where there is none."""
    with usable_database():
        check_database(Path(obj.db_path), create)
    try:
        with run_lock(obj.db_path):
            with usable_database():
                db = open_db(obj.db_path, create)
            try:
                yield db
            finally:
                db.close()
    except RunLocked as error:
        echo(f"hkma-tracker: {error}", err=True)
        sys.exit(int(ExitStatus.LOCKED))


OFFICER_WAIT = 300.0  # seconds an officer's one small write waits for a run's long one


@contextlib.contextmanager
def officer_database(obj: Context) -> Iterator[sqlite_utils.Database]:
    """The database for an officer's one small write (a review, a tag, a record correction):
    not behind the run lock, which would make them wait for a whole run; `patient_write`
    waits for a run's transaction instead."""
    with usable_database():
        check_database(Path(obj.db_path), create=False)
        db = open_db(obj.db_path)
    try:
        yield db
    finally:
        db.close()


def known_document(db: sqlite_utils.Database, ref: str) -> dict[str, Any]:
    """A document by id (or by a URL only it has), or a usage error saying what to give."""
    document = find_document(db, ref)
    if document is None:
        raise UsageProblem(f"no document {ref!r} (give an id from `changes`)")
    return document


def patient_write(db: sqlite_utils.Database, write: Callable[[], Any]) -> Any:
    """Run `write` in a write transaction, waiting its turn while a run holds the database for
    longer than the busy timeout (a long sweep's transaction), up to OFFICER_WAIT seconds:
    an officer's review or tag is stored, not refused with "try again later"."""
    waited_since = time.monotonic()
    told = False
    while True:
        try:
            with write_transaction(db):
                return write()
        except sqlite3.OperationalError as error:
            locked = "locked" in str(error) or "busy" in str(error)
            if not locked or time.monotonic() - waited_since > OFFICER_WAIT:
                raise
            if not told:
                echo("waiting for a run to finish writing…", err=True)
                told = True


mirror_option = click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="ORIGIN=BASE",
    help="Send requests for ORIGIN to BASE (same path and query); stored URLs stay real. "
    "Repeatable, e.g. --mirror https://www.hkma.gov.hk=http://127.0.0.1:8000",
)
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="hkma-tracker")
@click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    type=click.Path(dir_okay=False),
    help=f"TOML config file (env {CONFIG_ENV}); built-in defaults without one.",
)
@click.option(
    "--db",
    "db_path",
    envvar=DB_ENV,
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"SQLite history database (env {DB_ENV}).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO) to stderr.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs on stderr as text, or one JSON object per line for log collectors.",
)
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, db_path: str, verbose: bool, log_format: str
) -> None:
    """Track HKMA circulars, guidelines and topic pages; record every version; report changes.

    Example: hkma-tracker --db hkma.db run
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    os.environ[LOG_FORMAT_ENV] = log_format  # the crawl processes log in the same format
    ctx.obj = Context(config_path, db_path)


def _run(
    obj: Context,
    alerts: bool,
    sources: tuple[str, ...],
    mirrors: tuple[str, ...],
    dry_run: bool,
    full_sweep: bool,
    poll: bool,
    accept_withdrawals: bool,
    deadline: float | None,
    as_json: bool,
) -> NoReturn:
    from tracker.run import UnknownSourceError, run  # Scrapy's modules: only when crawling

    if poll and full_sweep:
        raise UsageProblem("--poll and --full-sweep: a poll reads only the newest items")
    config = obj.config(mirrors)
    if accept_withdrawals:
        health = dataclasses.replace(config.health, max_withdrawals_per_sweep=-1)
        config = dataclasses.replace(config, health=health)
    with usable_database():
        check_database(Path(obj.db_path), create=True)
    try:
        with usable_database(), run_lock(obj.db_path):
            report = run(
                config,
                obj.db_path,
                list(sources),
                alerts=alerts,
                dry_run=dry_run,
                full_sweep=full_sweep,
                deadline=deadline,
                poll=poll,
            )
    except UnknownSourceError as error:
        raise UsageProblem(str(error)) from None
    except RunLocked as error:
        echo(f"hkma-tracker: {error}", err=True)
        sys.exit(int(ExitStatus.LOCKED))
    render.run_report(report, as_json, show_events=dry_run)
    sys.exit(int(report.exit_status))


source_option = click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Only this source (rss, pages, brdr, press_releases). Repeatable; default: all enabled.",
)
regulator_option = click.option(
    "--regulator",
    "regulators",
    multiple=True,
    metavar="CODE",
    help="Only what this regulator published (HKMA, SFC, IA). Repeatable.",
)


def crawl_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `run` and `crawl` share."""
    options: list[Callable[[Callable[..., None]], Callable[..., None]]] = [
        source_option,
        mirror_option,
        click.option(
            "--dry-run",
            is_flag=True,
            help="Crawl and detect, print the events, store nothing, fetch no documents.",
        ),
        click.option(
            "--full-sweep",
            is_flag=True,
            help="Ask BRDR and the press-release API for everything, not only recent items "
            "(the daily reconciliation; also done by itself when a source has no baseline yet "
            "or was not run within its incremental window).",
        ),
        click.option(
            "--poll",
            is_flag=True,
            help="Read only the cheap listings (the RSS feeds, the newest page of BRDR per "
            "document type and of the press-release API, the SFC's feeds): the scheduler's "
            "frequent job. What needs a full read, and the topic pages, wait for a run.",
        ),
        click.option(
            "--accept-withdrawals",
            is_flag=True,
            help="Mark every document a full sweep finds gone from the register as withdrawn, "
            "even more than [health] max_withdrawals_per_sweep (which are otherwise held and "
            "reported to the operator).",
        ),
        click.option(
            "--deadline",
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            help="Stop crawling after this long; unfinished sources count as unhealthy "
            "(default: [run] deadline, 0 = none).",
        ),
        json_option,
        click.pass_obj,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command("run", epilog=EXIT_CODES_HELP)
@crawl_options
def run_command(obj: Context, **options: Any) -> None:
    """Crawl, detect changes, fetch linked documents, store it all, and write the digest of
    unreported changes.

    Example: hkma-tracker --db hkma.db run --source rss
    """
    _run(obj, alerts=True, **options)


@cli.command(epilog=EXIT_CODES_HELP)
@crawl_options
def crawl(obj: Context, **options: Any) -> None:
    """Like run, without the digest: changes stay pending for the next run's digest.

    Example: hkma-tracker crawl --source pages
    """
    _run(obj, alerts=False, **options)


def _check_since(since: str | None) -> None:
    if since:
        try:
            datetime.fromisoformat(since)
        except ValueError:
            raise UsageProblem(f"--since {since!r}: expected an ISO date like 2026-01-31") from None


def change_filters(command: Callable[..., None]) -> Callable[..., None]:
    """The filters `changes` and `export` share."""
    options: list[Callable[[Callable[..., None]], Callable[..., None]]] = [
        click.option("--since", help="Only events detected on or after this ISO date or time."),
        regulator_option,
        source_option,
        click.option("--kind", "kinds", multiple=True, help="new, changed or removed."),
        click.option("--function", "functions", multiple=True, help="Tagged with this function."),
        click.option("--product", "products", multiple=True, help="Tagged with this product."),
        click.option(
            "--entity-type", "entity_types", multiple=True, help="Tagged with this entity type."
        ),
        click.option(
            "--include-cosmetic",
            is_flag=True,
            help="Also changes of case, spacing, punctuation or to an equivalent link.",
        ),
        click.option(
            "--include-baseline",
            is_flag=True,
            help="Also what each listing showed the first time it was read (recorded, not news).",
        ),
        click.option("--limit", type=click.IntRange(min=1), help="At most N events."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _select_changes(obj: Context, **filters: Any) -> Iterator[dict[str, Any]]:
    """The events the filters select. A filter value that matches no known name is a usage
    error naming the known ones: an empty answer would read as "no such changes"."""
    _check_since(filters["since"])
    known = vocabularies(obj.config().taxonomy)
    try:
        tags = {
            kind: list(
                resolve_names(f"--{kind[:-1].replace('_', '-')}", filters[kind], known[kind])
            )
            for kind in KINDS
        }
        tags["regulators"] = list(
            resolve_names("--regulator", filters["regulators"], known["regulators"])
        )
        sources = resolve_names("--source", filters["sources"], known["sources"])
        kinds = resolve_names("--kind", filters["kinds"], KIND_NAMES)
    except UnknownName as error:
        raise UsageProblem(str(error)) from None
    db = obj.readonly_db()
    chosen = (filters["since"], sources, kinds)
    if not filters["include_baseline"]:
        left_out = count_baseline(db, *chosen, filters["include_cosmetic"], tags, BASELINE_COUNTED)
        if left_out:
            many = f"more than {BASELINE_COUNTED}" if left_out > BASELINE_COUNTED else left_out
            echo(f"{many} baseline events left out (--include-baseline shows them)", err=True)
    return list_changes(
        db,
        *chosen,
        filters["limit"],
        include_cosmetic=filters["include_cosmetic"],
        tags=tags,
        include_baseline=filters["include_baseline"],
    )


@cli.command()
@change_filters
@json_option
@click.pass_obj
def changes(obj: Context, as_json: bool, **filters: Any) -> None:
    """List change events, newest first, with their documents' tags. Cosmetic changes
    (case, spacing, punctuation, equivalent links) only with --include-cosmetic.

    Example: hkma-tracker changes --since 2026-01-01 --function AML/CFT --json
    """
    render.changes(_select_changes(obj, **filters), as_json)


@cli.command()
@change_filters
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.pass_obj
def export(obj: Context, fmt: str, **filters: Any) -> None:
    """Export change events with their tags to stdout: CSV (lists joined with "; ") or JSON
    (one object per line).

    Example: hkma-tracker export --format csv --since 2026-01-01 --product "Wealth Mgt" > wealth.csv
    """
    render.export(_select_changes(obj, **filters), fmt)


@cli.command("retag")
@json_option
@click.pass_obj
def retag_command(obj: Context, as_json: bool) -> None:
    """Tag the whole history again with the taxonomy in force; record which documents' tags
    moved (table tag_changes).

    Example: hkma-tracker --config my.toml retag
    """
    taxonomy = obj.config().taxonomy
    with exclusive_db(obj) as db:
        summary = retag(db, Tagger(taxonomy))
        with write_transaction(db):
            rebuild_links(db, links_for(db))  # how links are read may have changed with the code
            update_records(db)
    render.retag(summary, as_json)


@cli.command("search")
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def search_command(obj: Context, query: str, limit: int, as_json: bool) -> None:
    """Search titles and document texts, best match first; every term must match. A word
    also finds its other English forms (stablecoins: stablecoin-related); "a phrase" in
    double quotes is found as written; a word ending in * is a prefix (regul*). Nothing else
    is syntax. Chinese works too. When more than 10,000 documents match, the newest 10,000
    are ranked (it says so on stderr): add words to narrow.

    Example: hkma-tracker search "money laundering" --limit 5
    """
    if not fts_query(query):  # "", spaces, or only punctuation: nothing to search for
        raise UsageProblem("search: give at least one word")
    db = obj.readonly_db()
    found = search(db, query, limit)
    render.search_hits(found.hits, as_json)
    if not found.hits:
        echo("no document matches", err=True)
    elif len(found.hits) == limit and (total := count_matches(db, query)) > limit:
        echo(render.search_cut(limit, total, found.newest_ranked), err=True)


@cli.command("rule")
@click.argument("key")
@json_option
@click.pass_obj
def rule_command(obj: Context, key: str, as_json: bool) -> None:
    """The timeline of a rule: the records holding KEY, then every dated entry (issued,
    revised, superseded, consultation, effective date, circular, press release) of the
    documents linked to it: an SPM module (spm:IC-6 or IC-6), a circular reference
    (ref:B1/15C) or a BRDR document (brdr:20250428-3). A reference printed on more than a few
    documents is a file reference, not a rule: its records are listed instead.

    Example: hkma-tracker rule spm:IC-6
    """
    try:
        key = rule_key(key)
    except UnknownKey as error:
        raise UsageProblem(str(error)) from None
    db = obj.readonly_db()
    linked = linked_count(db, key)
    if not linked:
        similar = ", ".join(keys_like(db, key))
        raise UsageProblem(
            f"no document is linked to {key!r}" + (f" (known: {similar})" if similar else "")
        )
    if key.startswith("ref:") and linked > FILE_REFERENCE_AT:
        total, most = records_naming(db, key, FILE_REFERENCE_RECORDS, FILE_REFERENCE_READ)
        render.file_reference(key, linked, min(linked, FILE_REFERENCE_READ), total, most, as_json)
        return
    documents = rule_documents(db, key)
    # The records holding the key: those of the documents that are it (or continue it),
    # else of every document naming it.
    holding = [
        d["id"] for d in documents if set(d["link_kind"].split(", ")) & set(IDENTIFYING_LINKS)
    ]
    records = records_holding(db, holding or [d["id"] for d in documents])
    render.records_of_key(key, records, as_json)
    render.timeline(key, timeline(key, documents), as_json)


@cli.command("outbox")
@json_option
@click.pass_obj
def outbox_command(obj: Context, as_json: bool) -> None:
    """What waits to be delivered: messages not yet sent (and why), and per subscriber the
    changes not yet in a message.

    Example: hkma-tracker outbox --json
    """
    render.outbox(outbox_status(obj.readonly_db()), as_json)


@cli.command("digest")
@click.option("--send", is_flag=True, help="Build due digests and send every pending message now.")
@click.option("--dry-run", is_flag=True, help="Print the digests that are due; send nothing.")
@click.option("--subscriber", help="Only this subscriber.")
@click.pass_obj
def digest_command(obj: Context, send: bool, dry_run: bool, subscriber: str | None) -> None:
    """Send (ignoring retry backoff) or print the digests due now.

    Example: hkma-tracker digest --dry-run --subscriber aml-team
    """
    if send == dry_run:
        raise UsageProblem("digest: give either --send or --dry-run")
    mode = "send" if send else "dry-run"
    config = obj.config()
    names = [s.name for s in subscribers_of(config)]
    if subscriber is not None and subscriber not in names:
        raise UsageProblem(f"no subscriber {subscriber!r} (configured: {', '.join(names)})")
    with exclusive_db(obj) as db:
        if mode == "dry-run":
            previews = preview_digests(db, config, subscriber)
            for preview in previews:
                echo(f"== {preview.subscriber}: {preview.subject}")
                if preview.text is not None:
                    echo(preview.text)
            if not previews:
                echo("no digest due: no change waits for a digest, no message is pending", err=True)
            return
        report = deliver(db, config, force=True, only=subscriber)
    _exit_with(report)


def _exit_with(report: DeliveryReport, what: str = "") -> NoReturn:
    """Say what was sent and what was not; exit 4 if anything was not."""
    for where in report.sent:
        echo(f"{what}sent: {where}")
    for failure in report.failed:
        echo(f"{what}NOT sent: {failure}", err=True)
    sys.exit(int(ExitStatus.DELIVERY_FAILED) if report.failed else 0)


@cli.group("alerts")
def alerts_group() -> None:
    """Operator alerts and channel checks.

    Example: hkma-tracker alerts test
    """


@alerts_group.command("test")
@click.option(
    "--channel", type=click.Choice(["smtp", "file"]), help="Default: smtp if configured, else file."
)
@click.pass_obj
def alerts_test(obj: Context, channel: str | None) -> None:
    """Send a test message to the operator addresses, now.

    Example: hkma-tracker alerts test --channel smtp
    """
    config = obj.config()
    if channel == "smtp" and not config.smtp_configured:
        raise UsageProblem("alerts test: smtp.host is not configured")
    with exclusive_db(obj) as db:
        message, report = send_test_alert(db, config, by_file=channel == "file")
    _exit_with(report, f"test message {message} ")


def _document_or_fail(db: Any, ref: str) -> dict[str, Any]:
    document = find_document(db, ref)
    if document is None:
        raise UsageProblem(f"no document {ref!r} (give an id from `changes`, or its URL)")
    return document


@cli.command()
@click.argument("document_id")
@json_option
@click.pass_obj
def history(obj: Context, document_id: str, as_json: bool) -> None:
    """Every stored version of a document, and its change events.

    Example: hkma-tracker history 'rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN'
    """
    db = obj.readonly_db()
    document = _document_or_fail(db, document_id)
    render.history(document, document_history(db, document["id"]), as_json)


@cli.command()
@click.argument("document_id")
@click.pass_obj
def diff(obj: Context, document_id: str) -> None:
    """What changed between a document's last two versions.

    Example: hkma-tracker diff 'pages:https://www.hkma.gov.hk/eng/...|https://...pdf'
    """
    db = obj.readonly_db()
    document = _document_or_fail(db, document_id)
    render.diff(document, document_history(db, document["id"])["versions"])


@cli.command()
@json_option
@click.pass_obj
def status(obj: Context, as_json: bool) -> None:
    """Per source: last run, last healthy run, health and why, next scheduled run, overdue;
    the outbox; the last digest sent to each subscriber.

    Example: hkma-tracker status --json
    """
    render.status(status_report(obj.readonly_db(), obj.config()), as_json)


@cli.command("runs")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def runs_command(obj: Context, limit: int, as_json: bool) -> None:
    """Past runs, newest first, with each source's health, items, events, requests, bytes,
    duration and, for BRDR and the press-release API, whether it swept whole.

    Example: hkma-tracker runs --limit 5 --json
    """
    render.runs(list_runs(obj.readonly_db(), limit), as_json)


@cli.command("schedule")
@click.option(
    "--print", "show", is_flag=True, help="List the jobs and their next runs; start nothing."
)
@json_option
@click.pass_obj
def schedule_command(obj: Context, show: bool, as_json: bool) -> None:
    """Run the built-in scheduler (APScheduler, Hong Kong time) until SIGTERM or Ctrl-C.

    Jobs come from [schedule] (source name or "all" -> cron; "full_sweep") and from
    subscribers' daily or weekly cadences, plus an hourly dead-man check.

    Example: hkma-tracker --config tracker.toml schedule --print
    """
    config = obj.config()
    if show:
        render.schedule(job_list(config, datetime.now(UTC)), as_json)
        return
    global_args = ["--db", obj.db_path] + (["--config", obj.config_path] if obj.config_path else [])
    serve(config, global_args, obj.db_path)


@alerts_group.command("check")
@click.pass_obj
def alerts_check(obj: Context) -> None:
    """The dead-man check: alert the operator about sources with no healthy run within twice
    their scheduled interval, or (BRDR, press releases) no healthy full sweep within twice the
    sweep's (once), and send pending operator messages.

    Example: hkma-tracker alerts check
    """
    config = obj.config()
    with exclusive_db(obj) as db:
        stale, report = dead_man_check(db, config, datetime.now(UTC))
    for source, why in stale.items():
        echo(f"{source}: {why}")
    _exit_with(report)


@cli.command("datasette")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True)
@click.pass_obj
def datasette_command(obj: Context, port: int) -> NoReturn:
    """Browse the history in Datasette on 127.0.0.1 (read-only SQL), with the tracker's canned
    queries. Needs the extra: pip install 'hkma-tracker[datasette]'.

    Example: hkma-tracker --db hkma-tracker.db datasette --port 8001
    """
    obj.readonly_db().close()  # a usable tracker database, or one line saying why not
    try:
        import datasette  # noqa: F401 - only whether it is installed
    except ImportError:
        raise UsageProblem(
            "datasette: not installed; pip install 'hkma-tracker[datasette]'"
        ) from None
    command = [sys.executable, "-m", "datasette", "serve", obj.db_path]
    # Replaces this process: Ctrl-C and exit codes are Datasette's own.
    os.execv(sys.executable, [*command, "--host", "127.0.0.1", "--port", str(port)])  # noqa: S606


@cli.command(epilog=EXIT_CODES_HELP)
@mirror_option
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo database and digests (default: a new temporary folder).",
)
@click.pass_obj
def demo(obj: Context, mirrors: tuple[str, ...], workdir: Path | None) -> None:
    """Day 1 and day 2 of the HKMA, SFC and IA sources served on 127.0.0.1, into a fresh database.

    Shows the change events and the digest that day 2 produces. Needs no network.

    Example: hkma-tracker demo --workdir /tmp/hkma-demo
    """
    from tracker.demo import run_demo

    config = obj.config(mirrors)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="hkma-demo-"))
    try:
        day1, day2, db_path = run_demo(config, workdir)
    except FileExistsError as error:
        raise UsageProblem(str(error)) from None
    grown = records_across_sources(open_readonly(db_path), min_updates=3, limit=1)
    render.demo(day1, day2, db_path, grown[0] if grown else None)
    sys.exit(int(max(day1.exit_status, day2.exit_status)))


def _disk_full(error: BaseException) -> bool:
    """A full disk, as SQLite or the operating system says it."""
    return getattr(error, "errno", None) == errno.ENOSPC or "disk is full" in str(error)


def main() -> None:
    """Console entry point: click's handling, except that Ctrl-C exits 130."""
    try:
        result = cli.main(prog_name="hkma-tracker", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        echo("interrupted", err=True)
        sys.exit(int(ExitStatus.INTERRUPTED))
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (sqlite3.OperationalError, OSError) as error:
        if _disk_full(error):
            where = getattr(error, "filename", None) or os.environ.get(DB_ENV) or "the database"
            echo(
                f"hkma-tracker: disk full writing {where} ({error}); what was being written "
                "was rolled back and nothing stored was lost: free space and run again",
                err=True,
            )
            sys.exit(int(ExitStatus.ERROR))
        if not isinstance(error, sqlite3.OperationalError) or (
            "locked" not in str(error) and "busy" not in str(error)
        ):
            raise
        echo(
            f"hkma-tracker: the database is busy: another process kept it locked for over "
            f"{BUSY_TIMEOUT_MS // 1000} s ({error}); what was stored stays; try again later",
            err=True,
        )
        sys.exit(int(ExitStatus.LOCKED))
    sys.exit(result if isinstance(result, int) else 0)


# The compliance commands (deadlines, calendar, review, report) and the tag and route commands
# register themselves on `cli`.
from tracker import cli_compliance, cli_records, cli_tags  # noqa: E402, F401
