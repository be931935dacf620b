"""The commands compliance teams use after a digest: `deadlines`, `calendar`, `review` and
`report` (registered on the `hkma-tracker` group by tracker.cli)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from alerts.calendar import calendar_bytes, calendar_name
from alerts.report import report_csv, report_html, report_json
from alerts.subscribers import UnknownName, resolve_names
from spiders.normalize import HONG_KONG
from storage.compliance import (
    ReviewProblem,
    add_review,
    deadlines,
    review_log,
    review_status,
    twin_changes,
)
from storage.db import REVIEW_STATES
from tracker import render
from tracker.cli import (
    Context,
    UsageProblem,
    cli,
    json_option,
    officer_database,
    patient_write,
    regulator_option,
)
from tracker.compliance import attestation_report, calendar_entries
from tracker.config import vocabularies


def tag_options(command: Callable[..., None]) -> Callable[..., None]:
    """--function, --product and --regulator: the filters of the compliance commands."""
    command = regulator_option(command)
    command = click.option(
        "--product", "products", multiple=True, help="Documents tagged with this product."
    )(command)
    return click.option(
        "--function", "functions", multiple=True, help="Documents tagged with this function."
    )(command)


def _tags(
    obj: Context, functions: tuple[str, ...], products: tuple[str, ...], regulators: tuple[str, ...]
) -> dict[str, Any]:
    known = vocabularies(obj.config().taxonomy)
    try:
        return {
            "functions": list(resolve_names("--function", functions, known["functions"])),
            "products": list(resolve_names("--product", products, known["products"])),
            "regulators": list(resolve_names("--regulator", regulators, known["regulators"])),
        }
    except UnknownName as error:
        raise UsageProblem(str(error)) from None


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a calendar app polling the file never reads half of it."""
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as error:
        raise UsageProblem(f"{path}: cannot write: {error.strerror or error}") from None


def _hk_today() -> date:
    return datetime.now(HONG_KONG).date()


@cli.command("deadlines")
@click.option(
    "--days", type=click.IntRange(min=0), default=90, show_default=True, help="How far ahead."
)
@tag_options
@json_option
@click.pass_obj
def deadlines_command(
    obj: Context,
    days: int,
    functions: tuple[str, ...],
    products: tuple[str, ...],
    regulators: tuple[str, ...],
    as_json: bool,
) -> None:
    """Upcoming effective dates and consultation dates of current documents, soonest first,
    each with the sentence or register field that states it.

    Example: hkma-tracker deadlines --days 30 --function AML/CFT
    """
    tags = _tags(obj, functions, products, regulators)
    today = _hk_today()
    rows = deadlines(
        obj.readonly_db(), today.isoformat(), (today + timedelta(days=days)).isoformat(), tags
    )
    render.deadlines(rows, as_json)
    if not rows:
        render.echo(f"no deadline in the next {days} days", err=True)


@cli.command("calendar")
@click.option(
    "--ics",
    "ics_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .ics file to write (a calendar app can subscribe to it).",
)
@tag_options
@click.pass_obj
def calendar_command(
    obj: Context,
    ics_path: Path,
    functions: tuple[str, ...],
    products: tuple[str, ...],
    regulators: tuple[str, ...],
) -> None:
    """Write the deadlines as an iCalendar file: one all-day event per deadline, with
    reminders 30 and 7 days ahead. Export again to update: events keep their UID, a moved
    date raises its SEQUENCE, a superseded or withdrawn one is sent as cancelled.

    Example: hkma-tracker calendar --ics deadlines.ics --function AML/CFT
    """
    tags = _tags(obj, functions, products, regulators)
    entries = calendar_entries(obj.readonly_db(), tags)
    _write(ics_path, calendar_bytes(entries, calendar_name(tags)))
    cancelled = sum(1 for e in entries if e.cancelled)
    render.echo(f"{ics_path}: {len(entries) - cancelled} deadlines, {cancelled} cancelled")


@cli.group("review")
def review_group() -> None:
    """Record and list what was decided about each substantive change (an append-only log:
    a review adds to it, none is changed or deleted).

    Example: hkma-tracker review list --open
    """


@review_group.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only changes not yet decided.")
@tag_options
@click.option("--limit", type=click.IntRange(min=1), help="At most N (the oldest first).")
@json_option
@click.pass_obj
def review_list(
    obj: Context,
    open_only: bool,
    functions: tuple[str, ...],
    products: tuple[str, ...],
    regulators: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """Substantive changes with their review state (open until reviewed), oldest first.

    Example: hkma-tracker review list --open --function AML/CFT --limit 50
    """
    tags = _tags(obj, functions, products, regulators)
    render.reviews(review_status(obj.readonly_db(), open_only, tags, limit=limit), as_json)


@review_group.command("set")
@click.argument("change_id", type=int)
@click.argument("state", type=click.Choice(REVIEW_STATES))
@click.option("--owner", help="Who assessed it.")
@click.option("--note", help="What was decided, and why.")
@json_option
@click.pass_obj
def review_set(
    obj: Context, change_id: int, state: str, owner: str | None, note: str | None, as_json: bool
) -> None:
    """Record a review of change CHANGE_ID (the id `changes` and digests show), and of the
    other changes of the same publication that came with it (its RSS item and its register
    record: one update, one decision). Earlier reviews stay in the log.

    Example: hkma-tracker review set 42 actioned --owner "J. Chan" --note "Policy updated"
    """

    def decide() -> list[dict[str, Any]]:
        first = add_review(db, change_id, state, owner, note)
        return [first] + [
            add_review(db, t, state, owner, note) for t in twin_changes(db, change_id)
        ]

    try:
        with officer_database(obj) as db:
            rows = patient_write(db, decide)
    except ReviewProblem as error:
        raise UsageProblem(str(error)) from None
    render.review_added(rows, as_json)


@review_group.command("log")
@click.argument("change_id", type=int)
@json_option
@click.pass_obj
def review_log_command(obj: Context, change_id: int, as_json: bool) -> None:
    """Every review of change CHANGE_ID, oldest first: who said what, when.

    Example: hkma-tracker review log 42
    """
    try:
        rows = review_log(obj.readonly_db(), change_id)
    except ReviewProblem as error:
        raise UsageProblem(str(error)) from None
    render.review_rows(rows, as_json)
    if not rows:
        render.echo(f"change {change_id}: no review recorded (open)", err=True)


def _day_option(value: str, name: str) -> datetime:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise UsageProblem(f"{name} {value!r}: expected a date like 2026-01-01") from None
    return datetime.combine(day, time(), HONG_KONG).astimezone(UTC)


@cli.command("report")
@click.option("--from", "start", required=True, help="First day (Hong Kong), e.g. 2026-07-01.")
@click.option("--to", "end", required=True, help="Last day (Hong Kong), included.")
@tag_options
@click.option(
    "--format", "fmt", type=click.Choice(["html", "csv", "json"]), default="html", show_default=True
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@click.pass_obj
def report_command(
    obj: Context,
    start: str,
    end: str,
    functions: tuple[str, ...],
    products: tuple[str, ...],
    regulators: tuple[str, ...],
    fmt: str,
    output: Path | None,
) -> None:
    """An attestation report for an auditor: every check made in the period per source (gaps
    longer than the schedule allows flagged), every substantive change with its review and
    decision, the deadlines, and what the tracker covers and does not. The HTML is one
    printable page.

    Example: hkma-tracker report --from 2026-07-01 --to 2026-09-30 --output q3.html
    """
    since = _day_option(start, "--from")
    until = _day_option(end, "--to") + timedelta(days=1)
    if until <= since:
        raise UsageProblem(f"--to {end} is before --from {start}")
    tags = _tags(obj, functions, products, regulators)
    report = attestation_report(obj.readonly_db(), obj.config(), since, until, tags)
    text = {"html": report_html, "csv": report_csv, "json": report_json}[fmt](report)
    if output:
        _write(output, text.encode("utf-8"))
        render.echo(
            f"{output}: {report['totals']['changes']} changes ({report['totals']['open']} open), "
            f"{report['totals']['checks']} checks, {report['totals']['gaps']} gaps"
        )
    else:
        click.echo(text, nl=False)
