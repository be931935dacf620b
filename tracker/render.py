"""What the command line prints: every line goes through `echo` (text) or `emit` (one JSON
object per line), which make stored text safe for a terminal. Data in, lines out."""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from alerts.digest import hkt, hong_kong_day, standing
from spiders.normalize import UNPRINTABLE
from storage.records import Snapshot
from tracker.detect import changed_fields, describe_change
from tracker.routing import KIND_WORDS
from tracker.tagging import Taxonomy

if TYPE_CHECKING:  # the crawl's modules (Scrapy) are not loaded by commands that only read
    from tracker.run import RunReport

logger = logging.getLogger("hkma-tracker")


def terminal_safe(text: str) -> str:
    """Control and bidi-override characters as visible escapes (`\\u001b`): stored text
    never moves the cursor, clears the screen or reorders a line. Inside a JSON string the
    escape is the JSON escape of the same character."""
    return UNPRINTABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def hong_kong(moment: str | None, missing: str = "never") -> str:
    """A stored time as Hong Kong time, marked ("never" when there is none)."""
    return hkt(moment, missing)


def echo(message: str = "", err: bool = False) -> None:
    """The one way text reaches the terminal."""
    click.echo(terminal_safe(message), err=err)


def emit(record: dict[str, Any]) -> None:
    echo(json.dumps(record, ensure_ascii=False, default=str))


def run_report(report: RunReport, as_json: bool, show_events: bool) -> None:
    for plan in report.plans:
        summary = {
            "source": plan.source,
            "healthy": plan.healthy,
            "reason": plan.reason,
            "items": len(plan.seen),
            "new": plan.count("new"),
            "changed": plan.count("changed"),
            "removed": plan.count("removed"),
        }
        if plan.sweep:
            summary.update(sweep=plan.sweep, sweep_reason=plan.sweep_reason)
        if as_json:
            emit(summary)
        else:
            if plan.sweep:
                echo(f"{plan.source}: {plan.sweep_reason}")
            echo(
                f"{plan.source}: {'healthy' if plan.healthy else 'UNHEALTHY'}; "
                f"{summary['items']} items, {summary['new']} new, "
                f"{summary['changed']} changed, {summary['removed']} removed"
            )
            for verdict in plan.verdicts:
                if not verdict.healthy:
                    echo(f"  {verdict.url}: {verdict.reason}")
            if plan.held:
                echo(f"  {plan.held_reason}")
    if show_events:
        for event in report.events:
            record = {
                "kind": event.kind,
                "document_id": event.document_id,
                "title": event.snapshot.title,
                "url": event.snapshot.url,
                "fields": event.fields,
            }
            if as_json:
                emit(record)
            else:
                echo(f"  {event.kind:8} {event.snapshot.title}  <{event.snapshot.url}>")
    if report.documents and report.documents.counts:
        counts = report.documents.counts
        if as_json:
            emit({"documents": counts})
        else:
            echo("documents: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    for line in report.unfinished:
        if as_json:
            emit({"unfinished": line})
        else:
            echo(f"unfinished, left for the next run: {line}")
    if report.digest and not as_json:
        echo(f"digest: {report.digest}")
    if report.delivery_error:
        logger.error("digest NOT delivered: %s", report.delivery_error)


def changes(rows: Iterable[dict[str, Any]], as_json: bool) -> None:
    for change in rows:
        if as_json:
            emit({**change, "tags_set_by": tags_set_by(change)})
        else:
            fields = f" [{', '.join(change['fields'])}]" if change["fields"] else ""
            tags = ", ".join(change["functions"] + change["products"])
            if people := tags_set_by(change):
                tags += f"; set by a person: {', '.join(people)}"
            marks = ["baseline"] if change["baseline"] else []
            if change["significance"] == "cosmetic":
                marks.append(f"cosmetic: {change['significance_reason']}")
            fields += "".join(f" ({mark})" for mark in marks)
            record = f"  (record {change['record_id']})" if change.get("record_id") else ""
            echo(
                f"{change['id']:>6} {change['detected_at']} {change['kind']:8} "
                f"{change['source']:6} {change['title']}{fields}\n       {change['document_id']}"
                + record
                + (f"\n       tags: {tags}" if tags else "")
            )


def status(report: dict[str, Any], as_json: bool) -> None:
    if not report["sources"]:
        echo("no runs recorded yet", err=True)
    if as_json:
        for row in report["sources"]:
            emit({"type": "source", **row})
        emit({"type": "engine", "engine": report["engine"], "nodes": report["nodes"]})
        emit({"type": "outbox", **report["outbox"]})
        for failing in report["delivery_failing"]:
            emit({"type": "delivery", **failing})
        emit({"type": "linked_documents", **report["linked_documents"]})
        emit(
            {
                "type": "untagged_instruments",
                "since": report["untagged_since"],
                "changes": report["untagged_instruments"],
            }
        )
        emit({"type": "tags", **report["tags"]})
        for name, sent in report["last_digest"].items():
            emit({"type": "subscriber", "name": name, "last_digest_sent_at": sent})
        for name, alert in report["unbuilt_digests"].items():
            emit({"type": "unbuilt_digest", "subscriber": name, **alert})
        return
    for row in report["sources"]:
        state = "healthy" if row["healthy"] else f"UNHEALTHY: {row['reason']}"
        if row["last_run_id"] is None:
            state = "not run yet"
        healthy = row["last_healthy_run_id"]
        echo(
            f"{row['source']}: {state}; last run {row['last_run_id']} at "
            f"{hong_kong(row['last_run_at'])}, last healthy run "
            f"{healthy if healthy is not None else 'never'}, {row['documents']} active "
            f"documents, next run {hong_kong(row['next_scheduled_run'], 'not scheduled')}"
            + (f"; OVERDUE: {row['overdue']}" if row["overdue"] else "")
        )
    echo(f"crawl engine: {report['engine']}")
    for node in report["nodes"]:
        answer = node["answer"]
        said = (
            ", ".join(f"{n} {state}" for state, n in answer.items())
            if node["ok"]
            else f"NOT ANSWERING: {answer}"
        )
        echo(f"scrapyd node {node['node']}: {said}")
    outbox = report["outbox"]
    pending, failed = outbox["pending"], outbox["failed_attempts"]
    echo(f"outbox: {pending} messages pending ({failed} after a failure)")
    for failing in report["delivery_failing"]:
        echo(
            f"delivery to {failing['subscriber']} failing since "
            f"{hong_kong(failing['failing_since'])} "
            f"({failing['attempts']} attempts): {failing['last_error']}"
        )
    linked = ", ".join(f"{n} {state}" for state, n in sorted(report["linked_documents"].items()))
    if not report["documents_read"]:
        linked = "not read ([documents] enabled = false)"
    echo(f"linked documents: {linked or 'none'}")
    untagged = report["untagged_instruments"]
    echo(
        f"binding instruments without a function tag: {untagged} changes in the last 30 days"
        + (" (Datasette: untagged_instruments; `hkma-tracker tag set` to tag)" if untagged else "")
    )
    tags = report["tags"]
    if tags["other_taxonomies"]:
        echo(
            f"tags: some documents carry tags of taxonomy {', '.join(tags['other_taxonomies'])},"
            f" not of the one in force ({tags['taxonomy']}): run `hkma-tracker retag`"
        )
    else:
        echo(f"tags: taxonomy {tags['taxonomy']}")
    for name, sent in report["last_digest"].items():
        echo(f"subscriber {name}: last digest sent {hong_kong(sent)}")
    for name, alert in report["unbuilt_digests"].items():
        echo(
            f"digest for {name} cannot be built since {hong_kong(alert['created_at'])}: "
            f"{alert['reason']}"
        )


def runs(rows: list[dict[str, Any]], as_json: bool) -> None:
    for run_row in rows:
        if as_json:
            emit(run_row)
            continue
        echo(
            f"run {run_row['id']} {run_row['command']} {hong_kong(run_row['started_at'])} -> "
            f"{run_row['status']} (exit {run_row['exit_code']})"
        )
        if run_row["unfinished"]:
            echo(f"  unfinished: {run_row['unfinished']}")
        for s in run_row["sources"]:
            state = "healthy" if s["healthy"] else f"UNHEALTHY: {s['reason']}"
            echo(
                f"  {s['source']}: {state}; {s['items']} items, {s['new']} new, {s['changed']} "
                f"changed, {s['removed']} removed, {s['requests']} requests, {s['bytes']} bytes, "
                + (f"{s['duration_s']:.1f} s" if s["duration_s"] is not None else "- s")
                + (f", {s['sweep']} sweep" if s["sweep"] else "")
            )


EXPORT_COLUMNS = (
    "id",
    "detected_at",
    "kind",
    "baseline",
    "significance",
    "significance_reason",
    "regulator",
    "source",
    "document_id",
    "title",
    "url",
    "date",
    "fields",
    "functions",
    "products",
    "entity_types",
    "tags_set_by",
    "record_id",  # its rule record (`hkma-tracker record ID`)
)


def export(rows: Iterable[dict[str, Any]], fmt: str) -> None:
    """Change events as CSV (lists joined with "; ") or JSON lines, to stdout."""
    rows = ({**row, "tags_set_by": tags_set_by(row)} for row in rows)
    if fmt == "json":
        for row in rows:
            emit({column: row[column] for column in EXPORT_COLUMNS})
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            "; ".join(row[c]) if isinstance(row[c], list) else row[c] for c in EXPORT_COLUMNS
        )


def tags(
    found: dict[str, dict[str, list[dict[str, Any]]]], taxonomy: Taxonomy, as_json: bool
) -> None:
    """The tags a text got, with the evidence for each."""
    if as_json:
        emit({"taxonomy_version": taxonomy.version, **found})
        return
    for kind, named in found.items():
        for name, evidence in named.items():
            weight = sum(e["weight"] for e in evidence)
            echo(f"{kind[:-1] if kind != 'entity_types' else 'entity type'}: {name} ({weight:g})")
            for item in evidence:
                echo(f"    {item['weight']:>4g}  {item['where']:8} {item['rule']}")
    if not any(found.values()):
        echo(f"no tags (threshold {taxonomy.threshold:g})")


def retag(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(summary)
        return
    echo(
        f"taxonomy {summary['taxonomy_version']}: {summary['versions']} versions of "
        f"{summary['documents']} documents tagged; {summary['documents_with_new_tags']} "
        "documents' tags changed"
    )
    if summary["resumed_after_version"]:
        echo(f"(resumed an interrupted retag after version {summary['resumed_after_version']})")


def search_hits(hits: list[dict[str, Any]], as_json: bool) -> None:
    indent = "\n" + " " * 11
    for hit in hits:
        for kind in ("functions", "products"):
            hit[kind] = json.loads(hit[kind])
        if as_json:
            emit(hit)
        else:
            echo(
                f"{hit['date'] or '':10} {hit['title']}{indent}{hit['id']}{indent}{hit['snippet']}"
            )


def deadlines(rows: list[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        if as_json:
            emit(row)
        else:
            echo(
                f"{row['date']}  {row['kind']:19} {row['title']}\n"
                f"{'':12}{row['regulator']} {row['document_id']}"
                + (f"\n{'':12}\u201c{row['evidence']}\u201d" if row["evidence"] else "")
            )


def reviews(rows: Iterable[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        if as_json:
            emit(row)
        else:
            lines = [
                f"{row['change_id']:>6}  {row['state']:14} {hong_kong(row['detected_at'])} "
                f"{row['kind']:8} {row['title']}",
                f"{'':8}{row['document_id']}",
            ]
            if row["reviewed_at"]:
                who = f" by {row['owner']}" if row["owner"] else ""
                lines.append(f"{'':8}reviewed{who} {hong_kong(row['reviewed_at'])}")
            if row["note"]:
                lines.append(f"{'':8}{row['note']}")
            echo("\n".join(lines))


def review_added(rows: list[dict[str, Any]], as_json: bool) -> None:
    """The review stored, and the same decision recorded for the other changes of its
    publication."""
    if as_json:
        for row in rows:
            emit(row)
        return
    row, *twins = rows
    who = f" by {row['owner']}" if row["owner"] else ""
    echo(f"change {row['change_id']}: {row['state']}{who} (review {row['id']})")
    for twin in twins:
        echo(f"  also change {twin['change_id']}, the same publication (review {twin['id']})")


def review_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        if as_json:
            emit(row)
        else:
            who = f" by {row['owner']}" if row["owner"] else ""
            # A note's lines are indented under its review: it cannot pass for another review.
            note = f": {row['note']}" if row["note"] else ""
            note = note.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\n    ")
            echo(f"{hong_kong(row['at'])}  {row['state']}{who}{note}")


def search_cut(shown: int, total: int, newest_ranked: int | None) -> str:
    """What a search left out, for stderr."""
    line = f"{shown} of {total} shown (--limit shows more)"
    if newest_ranked:
        line += f"; the best of the newest {newest_ranked} matches (add words to narrow)"
    return line


def timeline(key: str, entries: list[dict[str, Any]], as_json: bool) -> None:
    for entry in entries:
        if as_json:
            emit({"key": key, "type": "entry", **entry})
        else:
            date, what = entry["date"] or "?", entry["entry"]
            echo(f"{date:10}  {what:13} {entry['title']}  ({entry['detail']})")


def outbox(rows: list[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        if as_json:
            emit(row)
        elif row["type"] == "message":
            why = f"; last error: {row['last_error']}" if row["last_error"] else ""
            echo(
                f"message {row['id']} {row['kind']} for {row['subscriber']} via {row['channel']}: "
                f"{row['subject']} ({row['attempts']} attempts, next {row['next_attempt_at']}{why})"
            )
        elif row["type"] == "queued":
            echo(f"{row['subscriber']}: {row['changes']} changes waiting for a digest")
    if not rows and not as_json:
        echo("outbox empty: everything was delivered")


def history(document: dict[str, Any], record: dict[str, Any], as_json: bool) -> None:
    """A document's versions and change events."""
    if as_json:
        for version in record["versions"]:
            emit({"type": "version", **version})
        for change in record["changes"]:
            emit({"type": "change", **change})
        return
    echo(f"{document['id']}\n  status {document['status']}, {document['url']}")
    if in_force := standing(json.loads(document["extra"])):
        echo(f"  {in_force}")
    tags = [
        t for kind in ("functions", "products", "entity_types") for t in json.loads(document[kind])
    ]
    people = set_by(document.get("corrections"))
    shown = [f"{t} (set by {people[t]})" if t in people else t for t in tags]
    echo(f"  tags in force: {', '.join(shown) or 'none'}")
    removed = set_by(document.get("corrections"), "remove")
    if removed:
        echo(f"  removed by a person: {', '.join(f'{t} ({by})' for t, by in removed.items())}")
    for version in record["versions"]:
        echo(f"  version {version['id']} {version['fetched_at']}: {version['title']}")
    for change in record["changes"]:
        fields = ", ".join(change["fields"])
        echo(f"  change {change['id']} {change['detected_at']} {change['kind']} {fields}")


def diff(document: dict[str, Any], versions: list[dict[str, Any]]) -> None:
    """What changed between a document's last two versions."""
    if len(versions) < 2:
        echo(f"{document['id']}: one version only, nothing to compare")
        return
    old, new = (Snapshot.from_row(v) for v in versions[-2:])
    echo(f"{document['id']}: version {versions[-2]['id']} -> {versions[-1]['id']}")
    echo(describe_change(old, new, changed_fields(old, new)))


def schedule(jobs: list[dict[str, Any]], as_json: bool) -> None:
    for job in jobs:
        if as_json:
            emit(job)
        else:
            echo(f"{job['id']:28} {job['next_run']}  {job['trigger']}")


def demo(
    day1: RunReport, day2: RunReport, db_path: Path, record: dict[str, Any] | None = None
) -> None:
    echo("== Day 1: first crawl (the baseline: recorded, not alerted)")
    run_report(day1, as_json=False, show_events=False)
    echo("\n== Day 2: the site changed")
    run_report(day2, as_json=False, show_events=True)
    if day2.digest:
        echo(f"\n== Digest ({Path(day2.digest).with_suffix('.txt')})\n")
        echo(Path(day2.digest).with_suffix(".txt").read_text(encoding="utf-8"))
    config = db_path.with_name("demo.toml")
    base = f"hkma-tracker --config {config} --db {db_path}"
    if record:
        echo(
            f"A rule record that grew over {record['updates']} publications from "
            f"{record['sources']} sources: {base} record {record['id']}  (or records)"
        )
    echo(f"Explore: {base} status  (or changes, deadlines)")


def tags_set_by(change: dict[str, Any]) -> list[str]:
    """The tags in force that a person set (the rest are the tagger's): "AML/CFT (by J. Chan,
    2026-12-02)"."""
    return [f"{name} (by {who})" for name, who in set_by(change.get("corrections")).items()]


def set_by(corrections: dict[str, Any] | str | None, action: str = "add") -> dict[str, str]:
    """Which tags a person added (or removed), and who: "AML/CFT" -> "J. Chan, 2026-12-02"."""
    loaded = json.loads(corrections) if isinstance(corrections, str) else corrections or {}
    return {
        name: f"{c['by']}, {hong_kong_day(c['at'])}"
        for named in loaded.values()
        for name, c in named.items()
        if c["action"] == action
    }


def tag_corrected(
    document: dict[str, Any],
    rows: list[dict[str, Any]],
    change: int | None,
    queued: list[str],
    as_json: bool,
) -> None:
    after = rows[-1]["after"]
    if as_json:
        emit(
            {
                "document_id": document["id"],
                "corrections": [{k: v for k, v in r.items() if k != "before"} for r in rows],
                "tags": after,
                "change": change,
                "queued_for": queued,
            }
        )
        return
    for row in rows:
        echo(f"correction {row['id']}: {row['action']} {row['kind']} {row['tag']} by {row['by']}")
    shown = "; ".join(f"{k.replace('_', ' ')}: {', '.join(v)}" for k, v in after.items() if v)
    echo(f"{document['id']}\n  tags in force: {shown or 'none'}")
    if queued:
        echo(f"  change {change} queued for the next digest of: {', '.join(queued)}")
    elif change is None:
        echo("  no substantive change to send (only its first reading is recorded)")
    else:
        echo(f"  change {change}: no subscriber newly matches (those it matches have it)")


def tag_log(rows: list[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        if as_json:
            emit(row)
            continue
        note = f": {row['note']}" if row["note"] else ""
        echo(
            f"{hong_kong(row['at'])} {row['by']} {'added' if row['action'] == 'add' else 'removed'}"
            f" {KIND_WORDS[row['kind']]} {row['tag']}{note}\n  {row['document_id']}"
        )


def route(change: dict[str, Any], answers: list[dict[str, Any]], as_json: bool) -> None:
    """Per subscriber: whether and why a change was (or would be) delivered."""
    if as_json:
        for answer in answers:
            emit({"change_id": change["id"], **answer})
        return
    tags = ", ".join(change["functions"] + change["products"] + change["entity_types"])
    echo(f"change {change['id']} ({change['kind']}): {change['title']}")
    echo(f"  tags in force: {tags or 'none'}")
    for answer in answers:
        queued = answer.get("queued")
        if queued and queued["message_status"] == "sent":
            state = f"sent in message {queued['message']} at {hong_kong(queued['sent_at'])}"
        elif queued and queued["message"]:
            state = f"in message {queued['message']} ({queued['message_status']})"
        elif queued:
            state = f"queued at {hong_kong(queued['at'])}, not yet in a digest"
        else:
            state = "would be delivered" if answer["would_go"] else "not delivered"
        if answer["would_go"]:
            how = {
                "everything": "it takes every change",
                "filters": "through its filters",
                "untagged": "as untagged",
                "correction": "after a tag correction",
            }[(queued or {}).get("route", {}).get("via") or answer["via"]]
            echo(f"{answer['subscriber']}: {state}, {how}")
            for kind, values in answer["matched"].items():
                echo(f"    {kind.replace('_', ' ')}: {', '.join(values)}")
            for tag, evidence in answer["evidence"].items():
                echo(f"    {tag} because: {'; '.join(evidence) or 'no evidence kept'}")
            if answer["why"]:
                echo(f"    {answer['why']}")
        else:
            echo(f"{answer['subscriber']}: {state}: {answer['why']}")


def rule_record(view: dict[str, Any], as_json: bool) -> None:
    """A record: its fields, then its updates newest first, each with its summary."""
    if as_json:
        emit(view)
        return
    echo(f"record {view['id']}: {view['title']}")
    fields = [
        ("regulator", view["regulator"]),
        ("rule type", view["rule_type"]),
        ("rule date", view["rule_date"]),
        ("effective", view["effective_date"]),
        ("last update", view["last_update"]),
        ("last substantive change", hong_kong(view["last_substantive_change"], "")),
        ("functions", ", ".join(view["functions"])),
        ("products", ", ".join(view["products"])),
        ("entity types", ", ".join(view["entity_types"])),
        ("references", ", ".join(f"{r['number']} ({r['date']})" for r in view["references"])),
    ]
    for label, value in fields:
        if value:
            echo(f"  {label + ':':25}{value}")
    for related in view["related"]:
        echo(f"  related: record {related['id']} {related['title']} ({related['evidence']})")
    echo(f"{len(view['updates'])} updates, newest first:")
    for n, update in enumerate(view["updates"]):
        number = len(view["updates"]) - n
        echo(f"  {number:>3}. {update['date'] or '?'}  {update['kind']}: {update['title']}")
        echo(f"       {update['url']}  [{', '.join(update['sources'])}; {update['evidence']}]")
        if update["summary"] and update["summary"] != update["title"]:
            echo(f"       {update['summary']}")


def rule_records(rows: list[dict[str, Any]], as_json: bool) -> None:
    for row in rows:
        if as_json:
            emit(row)
        else:
            dates = f"{row['first_date'] or '?'} to {row['last_date'] or '?'}"
            echo(f"{row['id']:>6}  {row['updates']:>3} updates  {dates}  {row['title']}")
    if not rows and not as_json:
        echo("no record matches")


def records_of_key(key: str, records: list[dict[str, Any]], as_json: bool) -> None:
    """The records a rule key's documents are in, before its timeline."""
    for record in records:
        if as_json:
            emit({"key": key, "type": "record", **record})
        else:
            echo(f"record {record['id']}: {record['title']} ({record['updates']} updates)")


def file_reference(
    key: str, documents: int, read: int, total: int, records: list[dict[str, Any]], as_json: bool
) -> None:
    """A reference printed on many documents: what carries it, by record, not one timeline;
    of the `read` documents linked to it most recently, the `total` records holding them and
    the `records` holding most of them."""
    if as_json:
        emit(
            {
                "key": key,
                "type": "file reference",
                "documents": documents,
                "documents_read": read,
                "records": total,
            }
        )
        for record in records:
            emit({"key": key, "type": "record", **record})
        return
    held = (
        f", in {total} records"
        if read == documents
        else f"; the {read} linked most recently are in {total} records"
    )
    shown = "" if len(records) == total else f"; the {len(records)} holding most of them"
    echo(
        f"{key} is a file reference, not one rule: {documents} documents carry it{held}{shown}. "
        "`hkma-tracker record ID` shows one:"
    )
    for record in records:
        echo(
            f"{record['id']:>6}  {record['documents']:>3} documents  "
            f"{record['last_date'] or '?'}  {record['title']}"
        )
