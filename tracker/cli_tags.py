"""The commands about tags and routing: `tag` (what the taxonomy gives a text; `tag set`,
`tag log` and `tag corrections`, the officers' corrections) and `route` (why a change went, or
did not go, to each subscriber). Registered on the `hkma-tracker` group by tracker.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from alerts.subscribers import UnknownName, resolve_names
from spiders.normalize import clean_text
from storage.history import change_with_document, find_document
from storage.records import KINDS
from storage.tags import CorrectionProblem, add_correction, correction_log
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
from tracker.config import vocabularies
from tracker.extract import document_fields
from tracker.routing import KIND_WORDS, queue_correction, route_report, subscribers_of
from tracker.tagging import Taggable, Taxonomy, tag


@cli.group("tag", invoke_without_command=True)
@click.option("--title", help="A title to tag (without a subcommand).")
@click.option(
    "--text-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file with the document's text.",
)
@click.option("--source", default="", help="Tag as from this source (rss, pages, brdr, ...).")
@click.option("--feed", default="", help="Tag as from this RSS feed (circulars, ...).")
@json_option
@click.pass_context
def tag_group(
    ctx: click.Context,
    title: str | None,
    text_file: Path | None,
    source: str,
    feed: str,
    as_json: bool,
) -> None:
    """Show the tags the taxonomy gives a text, with the evidence for each (for taxonomy
    authors testing a rule); or, with a subcommand, correct a stored document's tags.

    Example: hkma-tracker tag --title "Guidance on combating high-end money laundering"
    """
    if ctx.invoked_subcommand is not None:
        return
    if not title:
        raise UsageProblem("tag: give --title (or a subcommand: set, log, corrections)")
    taxonomy = ctx.obj.config().taxonomy
    extra = {"feed": feed} if feed else {}
    document = None
    if text_file:  # read as a stored document's text is: with the fields extracted from it
        text = clean_text(text_file.read_text(encoding="utf-8"))
        document = {**document_fields(text), "text": text}
    found = tag(Taggable(title, "", source, extra=extra, document=document), taxonomy)
    render.tags(found, taxonomy, as_json)


def resolve_tag(value: str, taxonomy: Taxonomy) -> tuple[str, str]:
    """(kind, name) of a tag as an officer writes it: a name or alias in any case, through
    the one matcher of every filter; `products:bank` says which kind where a word names two."""
    known = vocabularies(taxonomy)
    kind, _, word = value.rpartition(":") if ":" in value else ("", "", value)
    kinds = [kind] if kind in KINDS else list(KINDS)
    if kind and kind not in KINDS:
        raise UsageProblem(f"{value!r}: {kind!r} is not one of {', '.join(KINDS)}")
    found = {}
    for each in kinds:
        try:
            (found[each],) = resolve_names(each, [word], known[each])
        except UnknownName:
            continue
    if not found:
        names = "; ".join(
            f"{k}: {', '.join(sorted(set(known[k].values()), key=str.casefold))}" for k in KINDS
        )
        raise UsageProblem(f"tag {value!r} is not one of the known names ({names})")
    if len(found) > 1:
        both = " and ".join(f"the {KIND_WORDS[k]} {n}" for k, n in found.items())
        raise UsageProblem(
            f"tag {value!r} names {both}: write {' or '.join(f'{k}:{word}' for k in found)}"
        )
    ((kind, name),) = found.items()
    return kind, name


@tag_group.command("set")
@click.argument("document_id")
@click.option("--add", "added", multiple=True, metavar="TAG", help="A tag the document has.")
@click.option("--remove", "removed", multiple=True, metavar="TAG", help="A tag it does not have.")
@click.option("--by", "by", required=True, help="Who makes the correction.")
@click.option("--note", help="Why.")
@json_option
@click.pass_obj
def tag_set(
    obj: Context,
    document_id: str,
    added: tuple[str, ...],
    removed: tuple[str, ...],
    by: str,
    note: str | None,
    as_json: bool,
) -> None:
    """Correct a document's tags: add the tags the rules missed, remove those they gave
    wrongly. The correction is kept in an append-only log and holds across new versions of
    the document and `retag`. A tag that makes the document match a subscriber who did not
    get it queues its latest substantive change for that subscriber's next digest, once.

    Example: hkma-tracker tag set 'rss:circulars|https://…' --add AML/CFT --by "J. Chan"
    """
    if not added and not removed:
        raise UsageProblem("tag set: give --add TAG or --remove TAG")
    config = obj.config()
    wanted = [("add", *resolve_tag(t, config.taxonomy)) for t in added]
    wanted += [("remove", *resolve_tag(t, config.taxonomy)) for t in removed]
    try:
        with officer_database(obj) as db:
            document = known_document(db, document_id)

            def correct() -> tuple[list[dict[str, Any]], int | None, list[str]]:
                rows = [
                    add_correction(db, document["id"], kind, name, action, by, note)
                    for action, kind, name in wanted
                ]
                correction = {
                    "by": rows[-1]["by"],
                    "at": rows[-1]["at"],
                    **{a: [r["tag"] for r in rows if r["action"] == a] for a in ("add", "remove")},
                }
                change, queued = queue_correction(
                    db, config, document["id"], rows[0]["before"], correction
                )
                return rows, change, queued

            rows, change, queued = patient_write(db, correct)
    except CorrectionProblem as error:
        raise UsageProblem(str(error)) from None
    render.tag_corrected(document, rows, change, queued, as_json)


@tag_group.command("log")
@click.argument("document_id")
@json_option
@click.pass_obj
def tag_log(obj: Context, document_id: str, as_json: bool) -> None:
    """Every tag correction of a document, oldest first: who added or removed what, when, why.

    Example: hkma-tracker tag log 'rss:circulars|https://…'
    """
    db = obj.readonly_db()
    document = find_document(db, document_id)
    if document is None:
        raise UsageProblem(f"no document {document_id!r} (give an id from `changes`)")
    rows = correction_log(db, document["id"])
    render.tag_log(rows, as_json)
    if not rows:
        render.echo(f"{document['id']}: no tag correction recorded", err=True)


@tag_group.command("corrections")
@json_option
@click.pass_obj
def tag_corrections(obj: Context, as_json: bool) -> None:
    """Every tag correction of every document, oldest first (labelled data for taxonomy
    authors: `python bench/tagging.py --db FILE` measures the rules on them).

    Example: hkma-tracker tag corrections --json
    """
    rows = correction_log(obj.readonly_db())
    render.tag_log(rows, as_json)
    if not rows:
        render.echo("no tag correction recorded", err=True)


@cli.command("route")
@click.argument("change_id", type=int)
@click.option("--subscriber", help="Only this subscriber.")
@json_option
@click.pass_obj
def route_command(obj: Context, change_id: int, subscriber: str | None, as_json: bool) -> None:
    """Why did a subscriber (not) get change CHANGE_ID (the id `changes` and digests show)?
    For each subscriber: queued or sent, and through which filter and tag (with the tag's
    evidence), or as untagged; or which filter excludes it.

    Example: hkma-tracker route 42 --subscriber aml-team
    """
    config = obj.config()
    names = [s.name for s in subscribers_of(config)]
    if subscriber is not None and subscriber not in names:
        raise UsageProblem(f"no subscriber {subscriber!r} (configured: {', '.join(names)})")
    db = obj.readonly_db()
    change = change_with_document(db, change_id)
    if change is None:
        raise UsageProblem(f"change {change_id}: no such change event")
    answers: list[dict[str, Any]] = route_report(db, config, change, subscriber)
    render.route(change, answers, as_json)
