"""The rule-record commands: `record` (show one; join, split, retitle) and `records`."""

from __future__ import annotations

from typing import Any

import click
import sqlite_utils

from storage.history import find_document
from storage.rule_records import (
    add_record_correction,
    list_records,
    record_of_document,
    record_row,
)
from tracker import render
from tracker.cli import (
    Context,
    UsageProblem,
    cli,
    json_option,
    known_document,
    officer_database,
    patient_write,
)
from tracker.rule_records import record_view, update_records


class _ShowByDefault(click.Group):
    """`record 12` is `record show 12`: a record is looked at far more often than corrected."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


def _record_id(db: sqlite_utils.Database, given: str) -> int:
    """A record by its number, or the record a document is in (any document id)."""
    if given.isdigit() and record_row(db, int(given)) is not None:
        return int(given)
    document = find_document(db, given)
    record_id = record_of_document(db, document["id"]) if document else None
    if record_id is None:
        raise UsageProblem(
            f"no record {given!r}: give a record number (from `records`) or a document id "
            "(from `changes`); records are made by `run` (or `retag` after an upgrade)"
        )
    return record_id


@cli.group("record", cls=_ShowByDefault)
def record_group() -> None:
    """A rule record: one rule or initiative and every publication on it (`record ID`), and
    officers' corrections of what belongs together (join, split, retitle).

    Example: hkma-tracker record 12
    """


@record_group.command("show")
@click.argument("record")
@json_option
@click.pass_obj
def record_show(obj: Context, record: str, as_json: bool) -> None:
    """A record's fields and its updates, newest first, each with a summary taken from the
    document. RECORD: its number, or any of its documents' ids.

    Example: hkma-tracker record 12
    """
    db = obj.readonly_db()
    view = record_view(db, _record_id(db, record))
    assert view is not None
    render.rule_record(view, as_json)


def _correct(
    obj: Context, action: str, document: str, by: str, target: str | None, note: str | None
) -> dict[str, Any]:
    with officer_database(obj) as db:
        found = known_document(db, document)

        def write() -> int:
            add_record_correction(db, action, found["id"], by, target, note)
            update_records(db)
            record_id = record_of_document(db, found["id"])
            assert record_id is not None
            return record_id

        view = record_view(db, patient_write(db, write))
    assert view is not None
    return view


by_option = click.option("--by", required=True, help="Who decides (kept in the log).")
note_option = click.option("--note", help="Why.")


@record_group.command("join")
@click.argument("document")
@click.argument("record")
@by_option
@note_option
@json_option
@click.pass_obj
def record_join(
    obj: Context, document: str, record: str, by: str, note: str | None, as_json: bool
) -> None:
    """Put a document (with the other listings of its publication) in a record. Kept in an
    append-only log and applied whenever records are made again.

    Example: hkma-tracker record join 'press_releases:https://www.hkma.gov.hk/…/20260305-3/' 12
    --by "J. Chan"
    """
    db = obj.readonly_db()
    row = record_row(db, _record_id(db, record))
    assert row is not None
    render.rule_record(_correct(obj, "join", document, by, row["started_by"], note), as_json)


@record_group.command("split")
@click.argument("document")
@by_option
@note_option
@json_option
@click.pass_obj
def record_split(obj: Context, document: str, by: str, note: str | None, as_json: bool) -> None:
    """Take a document (with the other listings of its publication) out of its record: it
    starts a record of its own.

    Example: hkma-tracker record split 'rss:circulars|https://…' --by "J. Chan"
    """
    render.rule_record(_correct(obj, "split", document, by, None, note), as_json)


@record_group.command("retitle")
@click.argument("record")
@click.argument("title")
@by_option
@note_option
@json_option
@click.pass_obj
def record_retitle(
    obj: Context, record: str, title: str, by: str, note: str | None, as_json: bool
) -> None:
    """Give a record the title people know it by.

    Example: hkma-tracker record retitle 12 "GenA.I. Sandbox" --by "J. Chan"
    """
    title = " ".join(title.split())
    if not title:
        raise UsageProblem("record retitle: the title is empty")
    db = obj.readonly_db()
    row = record_row(db, _record_id(db, record))
    assert row is not None
    render.rule_record(_correct(obj, "retitle", row["started_by"], by, title, note), as_json)


@cli.command("records")
@click.option("--since", metavar="DATE", help="Only records with a publication on or after DATE.")
@click.option("--function", "functions", multiple=True, metavar="F", help="Repeatable.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@click.pass_obj
def records_command(
    obj: Context, since: str | None, functions: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Rule records, the most recently updated first: number, updates, dates, title.

    Example: hkma-tracker records --since 2026-01-01 --function AML/CFT
    """
    render.rule_records(list_records(obj.readonly_db(), since, list(functions), limit), as_json)
