"""Benchmark: does a run cost what changed, not what is stored? Histories of growing size.

For each size (versions), builds a history of synthetic HKMA-like documents through the
tracker's own ingest step (`tracker.run.record_source`: plan, then one transaction per batch;
80-character titles, 2-20 KB texts, 10% Chinese, 20% amended once, half linking a PDF), then
measures, each in a fresh child process (so that peak memory is the step's own):

- a no-change run of a 2,000-item feed: deciding and writing (`record_source`), the links
  update and choosing due document fetches, i.e. the parent's whole work but the crawl;
- a run whose feed brings one amended item: the same, plus regrouping the whole history into
  rule records (what a run that stored a change does);
- search p50/p95 over English and Chinese queries;
- `status`, `changes --function`, `export --format csv`.

Prints one table row per size and the ratios of the largest to the smallest.
Run: `python bench/scale.py` (10k and 100k versions, some 15 minutes to build; `--keep DIR`
keeps the databases; `--only-commands --keep DIR` times the bounded commands alone on them).
For 1M: `--sizes 10000,100000,1000000 --keep DIR --replicate-from 10000` copies the 10k
history's rows (ingesting 1M would take hours; 30 minutes and 28 GB of disk).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import itertools
import json
import os
import random
import runpy
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from measure import peak_rss_mb

from storage.db import open_db, open_readonly, write_transaction
from storage.history import fetch_candidates, finish_run, start_run
from storage.links import rebuild_links, update_links
from storage.records import SourcePlan
from tracker.config import Config, load_config
from tracker.documents import revalidate_before, select_fetches
from tracker.rule_records import links_for, update_records
from tracker.rules import links_of
from tracker.run import RunReport, record_source
from tracker.sweep import Sweep
from tracker.tagging import Tagger

HKMA = "https://www.hkma.gov.hk"
FEED = f"{HKMA}/eng/other-information/rss/rss_circulars.xml"
HOT = 2_000  # items the timed feed lists
BATCH = 2_000
# Texts as prose is made: common words very often, rare ones seldom (Zipf's law, over some
# 20,000 made-up words), and a few regulatory topics per document, so that a query matches
# what such a query matches in a real history (a few percent of it), not everything.
_SYLLABLES = "ka lo mi ren ta su vo bek dar fin gol hen jun kir lam mor nel pra qui ros sel tor"
VOCABULARY = [a + b + c for a in _SYLLABLES.split() for b in _SYLLABLES.split() for c in "aeiou"]
_ZIPF = list(itertools.accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))
TOPICS = [
    "money laundering", "terrorist financing", "customer due diligence", "capital adequacy",
    "liquidity risk", "operational resilience", "stablecoin issuers", "stored value facilities",
    "virtual assets", "sanctions screening", "fraud prevention", "climate risk disclosure",
    "supervisory policy manual", "consultation paper", "banking ordinance", "cybersecurity",
    "third-party outsourcing", "payment systems", "deposit protection", "wealth management",
    "insurance distribution", "securities margin", "fund distribution", "complaints handling",
    "conduct of business", "interest rate risk", "credit risk", "market risk", "recovery plans",
    "resolution planning",
]  # fmt: skip
HANZI = (
    "銀行監管打擊洗錢恐怖分子資金籌集客戶盡職審查"
    "資本充足流動性風險管理營運穩健穩定幣發行人儲值支付工具"
)
ENGLISH_QUERIES = ["money laundering", "stablecoin", "capital adequacy", "fraud", "liquidity risk"]
CHINESE_QUERIES = ["洗錢", "穩定幣", "資本充足", "風險管理", "監管"]


def config_for(feeds: dict[str, str]) -> Config:
    """The shipped config, reading only `feeds` of the RSS source and no documents."""
    config = load_config(None)
    sources = {name: {**spec, "enabled": name == "rss"} for name, spec in config.sources.items()}
    sources["rss"] = {**sources["rss"], "feeds": feeds}
    return dataclasses.replace(config, sources=sources)


def text_of(rng: random.Random, chinese: bool) -> tuple[str, list[str]]:
    """A text and the regulatory topics it is about."""
    size = rng.randint(2_000, 20_000)
    if chinese:
        return "".join(rng.choice(HANZI) for _ in range(size // 3)), []
    words = rng.choices(VOCABULARY, cum_weights=_ZIPF, k=size // 7)
    topics = rng.sample(TOPICS, 2)
    for topic in topics:
        for _ in range(rng.randint(1, 5)):
            words.insert(rng.randrange(len(words)), topic)
    return " ".join(words), topics


def item(rng: random.Random, n: int, listing: str, amended: bool = False) -> dict[str, Any]:
    chinese = n % 10 == 0
    text, topics = text_of(rng, chinese)
    # A third of titles name their subject, as "Guideline on Anti-Money Laundering ..." does.
    subject = f"{topics[0].capitalize()}: " if topics and n % 3 == 0 else ""
    words = " ".join(rng.choices(VOCABULARY, cum_weights=_ZIPF, k=12))
    title = f"Circular {n}: {subject}{words}"
    extra: dict[str, Any] = {"feed": "circulars"}
    if n % 25 == 0:  # revisions of a few hundred SPM modules over the years
        extra["spm_code"] = f"IC-{n // 25 % 300}"
    if n % 4 == 0:  # a file reference printed on a quarter of all circulars
        extra["links"] = [{"key": "ref:B1/15C", "kind": "mentions", "evidence": "bench"}]
    if n % 10 == 3:  # a consultation, with its dates
        year, month = 2010 + n % 18, 1 + n % 12
        extra["consultation"] = {
            "status": "closed",
            "opens": f"{year}-{month:02d}-01",
            "closes": f"{year}-{month:02d}-28",
        }
    if n % 2:
        extra["document_url"] = (
            f"{HKMA}/media/eng/doc/key-information/guidelines-and-circular/{n}.pdf"
        )
    return {
        "source": "rss",
        "listing": listing,
        "key": f"{HKMA}/eng/news-and-media/circulars/{n}",
        "title": title[:80] + (" (amended)" if amended else ""),
        "url": f"{HKMA}/eng/news-and-media/circulars/{n}",
        "date": f"20{10 + n % 16:02d}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "text": text,
        "extra": extra,
    }


def result_of(listing: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = {
        "listing": listing,
        "ok": True,
        "reason": "",
        "items": len(items),
        "removals_allowed": False,
        "comparable": True,
    }
    return {"outcomes": [outcome], "items": items, "stats": {}, "finish_reason": "finished"}


def record(db: Any, listing: str, items: list[dict[str, Any]]) -> tuple[int, SourcePlan]:
    """One run of the RSS source listing `items` under `listing`, decided and written by the
    tracker's own step (`record_source`); the run id and its plan."""
    config = config_for({"feed": listing})
    run_id = start_run(db, "bench")
    states = {listing: {"last_healthy_items": len(items), "last_full_items": len(items)}}
    result = result_of(listing, items)
    plan = record_source(
        config,
        db,
        "rss",
        result,
        states,
        {listing: Sweep(True)},
        RunReport(run_id),
        Tagger(config.taxonomy),
    )
    finish_run(db, run_id, "ok", 0)
    return run_id, plan


def ingest(db_path: Path, listing: str, items: list[dict[str, Any]]) -> None:
    db = open_db(db_path)
    try:
        record(db, listing, items)
    finally:
        db.close()


def build(db_path: Path, versions: int) -> None:
    """About `versions` versions: documents in batches of 2,000 across archive feeds, every
    fifth amended once in a later batch; the first 2,000 listed by the timed feed."""
    rng = random.Random(versions)
    documents = int(versions / 1.2)
    made = 0
    for start in range(0, documents, BATCH):
        numbers = range(start, min(start + BATCH, documents))
        listing = FEED if start == 0 else f"{FEED}?archive={start}"
        ingest(db_path, listing, [item(rng, n, listing) for n in numbers])
        made += len(numbers)
        amended = [n for n in numbers if n % 5 == 4 and start > 0]
        if amended:  # a later version of these, listed by the same archive feed
            ingest(db_path, listing, [item(rng, n, listing, amended=True) for n in amended])
            made += len(amended)
        print(f"  built {made} versions", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    spread_over_ten_years(db_path)
    db = open_db(db_path)
    try:
        with write_transaction(db):  # as the runs would have linked and grouped them
            rebuild_links(db, links_for(db))
            update_records(db)
    finally:
        db.close()


def spread_over_ten_years(db_path: Path) -> None:
    """Events detected over ten years up to now, in the order they were made (a history built
    in minutes would put a whole history in the last week)."""
    db = sqlite3.connect(db_path)
    with db:
        (last,) = db.execute("SELECT max(id) FROM changes").fetchone()
        db.execute(
            "UPDATE changes SET detected_at = strftime('%Y-%m-%dT%H:%M:%S+00:00', "
            "'now', printf('-%d seconds', CAST((? - id) * 315360000.0 / ? AS INTEGER)))",
            [last, last],
        )
    db.close()


def replicate(small: Path, large: Path, factor: int) -> None:
    """A history `factor` times `small`'s: its rows copied under other ids (texts, documents,
    versions, tags, changes, links), as ingest writes them for other documents of other
    feeds. For sizes whose ingest would take hours (1M versions); the timed feed still lists
    the first 2,000 only."""
    shutil.copy(small, large)
    db = sqlite3.connect(large, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    top = {
        t: db.execute(f"SELECT max(rowid) FROM {t}").fetchone()[0]
        for t in ("texts", "versions", "changes", "records")
    }
    for k in range(1, factor):
        copy = {
            "texts": {"id": f"id + {k * top['texts']}", "hash": f"hash || '#{k}'"},
            "documents": {
                "id": f"id || '#{k}'",
                "listing": f"listing || '#copy{k}'",
                "text_id": f"text_id + {k * top['texts']}",
            },
            "versions": {
                "id": f"id + {k * top['versions']}",
                "document_id": f"document_id || '#{k}'",
                "text_id": f"text_id + {k * top['texts']}",
            },
            "tags": {
                "version_id": f"version_id + {k * top['versions']}",
                "document_id": f"document_id || '#{k}'",
            },
            "changes": {
                "id": f"id + {k * top['changes']}",
                "document_id": f"document_id || '#{k}'",
            },
            "links": {"document_id": f"document_id || '#{k}'"},
            "records": {"id": f"id + {k * top['records']}", "started_by": f"started_by || '#{k}'"},
            "record_members": {
                "document_id": f"document_id || '#{k}'",
                "record_id": f"record_id + {k * top['records']}",
                "publication": f"publication || '#{k}'",
            },
            "record_links": {
                "record_id": f"record_id + {k * top['records']}",
                "other_id": f"other_id + {k * top['records']}",
            },
        }
        originals = {
            "texts": f"id <= {top['texts']}",
            "documents": "id NOT LIKE '%#%'",
            "versions": f"id <= {top['versions']}",
            "tags": f"version_id <= {top['versions']}",
            "changes": f"id <= {top['changes']}",
            "links": "document_id NOT LIKE '%#%'",
            "records": f"id <= {top['records']}",
            "record_members": "document_id NOT LIKE '%#%'",
            "record_links": f"record_id <= {top['records']}",
        }
        db.execute("BEGIN")
        for table, overrides in copy.items():
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            select = ", ".join(overrides.get(c, c) for c in columns)
            db.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT {select} FROM {table} WHERE {originals[table]}"
            )
        db.execute("COMMIT")
        print(f"  copy {k} of {factor - 1}", file=sys.stderr, end="\r")
    db.close()
    spread_over_ten_years(large)  # later copies later, as a history grows: a week's events together


def settle_documents(db_path: Path) -> None:
    """As if the documents phase had read every linked document once (the synthetic history
    has no PDFs to fetch): what a history that runs for years looks like, where only new,
    moved or failed links are due. Idempotent."""
    db = sqlite3.connect(db_path)
    with db:
        db.execute(
            "UPDATE documents SET fetch_status = 'ok', fetch_attempts = 0, "
            "fetch_url = json_extract(extra, '$.document_url'), "
            "fetch_listing_hash = listing_hash, fetched_at = datetime('now') "
            "WHERE fetch_status IS NULL AND json_extract(extra, '$.document_url') IS NOT NULL"
        )
    db.close()


def hot_items(versions: int) -> list[dict[str, Any]]:
    """What the timed feed lists: the first batch as it was built (unchanged)."""
    rng = random.Random(versions)
    return [item(rng, n, FEED) for n in range(HOT)]


def measure_no_change(db_path: Path, versions: int) -> dict[str, Any]:
    items = hot_items(versions)
    db = open_db(db_path)
    started = time.perf_counter()
    run_id, plan = record(db, FEED, items)
    decided = time.perf_counter()
    with write_transaction(db):
        update_links(db, links_of, run_id)
    linked = time.perf_counter()
    now = datetime.now(UTC)
    candidates = fetch_candidates(db, ["rss"], revalidate_before(now, 7.0), 3, 600)
    select_fetches(list(candidates.values()), now, 7.0, 300)
    done = time.perf_counter()
    assert not plan.events, f"a no-change run found {len(plan.events)} events"
    return {
        "wall_s": done - started,
        "decide_write_s": decided - started,
        "links_s": linked - decided,
        "fetch_choice_s": done - linked,
    }


def measure_one_change(db_path: Path, versions: int) -> dict[str, Any]:
    """A run whose feed brings one amended item, doing what such a run does but the crawl:
    deciding and writing, the links update and regrouping the whole history into rule records
    (which a run does whenever it stored a change); then the item restored the same way (a
    second sample, leaving the history as the no-change run expects it). The slower of the
    two, and the regrouping's share."""
    items = hot_items(versions)
    amended = [item(random.Random(versions), 0, FEED, amended=True), *items[1:]]
    db = open_db(db_path)
    samples = []
    for listing in (amended, items):
        started = time.perf_counter()
        run_id, plan = record(db, FEED, listing)
        with write_transaction(db):
            update_links(db, links_of, run_id)
            linked = time.perf_counter()
            update_records(db)
        done = time.perf_counter()
        assert len(plan.events) == 1, f"one amended item made {len(plan.events)} events"
        samples.append({"wall_s": done - started, "records_s": done - linked})
    return max(samples, key=lambda s: s["wall_s"])


def measure_search(db_path: Path) -> dict[str, Any]:
    from storage.compliance import deadlines, open_reviews
    from storage.search import search

    db = open_readonly(db_path)
    figures = {}
    for name, queries in (("en", ENGLISH_QUERIES), ("zh", CHINESE_QUERIES)):
        for query in queries:  # once to warm the cache, as a database in use has it warm
            search(db, query, 20)
        times = []
        for _ in range(10):
            for query in queries:
                started = time.perf_counter()
                search(db, query, 20)
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        figures[f"{name}_p50_ms"] = statistics.median(times)
        figures[f"{name}_p95_ms"] = times[int(len(times) * 0.95) - 1]
    # What a digest adds for each subscriber: its open reviews; and the upcoming deadlines.
    for name, query in (
        ("open_reviews_ms", lambda: open_reviews(db, "digest")),
        ("deadlines_ms", lambda: deadlines(db, "2026-01-01", "2027-12-31")),
    ):
        started = time.perf_counter()
        query()
        figures[name] = (time.perf_counter() - started) * 1000
    return figures


def measure_cli(db_path: Path, *args: str) -> dict[str, Any]:
    """Wall time and peak memory of one command, run in a fresh process, and the time of
    its own work (`command_s`: from after the interpreter started and imported the
    command line, which every command pays alike, to its exit)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--step", "cli", "--db", str(db_path), "--", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return {"s": time.perf_counter() - started, **json.loads(out.stderr.splitlines()[-1])}


def start_time() -> float:
    """The wall time of `hkma-tracker --version`: starting the command line, best of 3."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tracker", "--version"], check=True, stdout=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - started)
    return min(times)


def run_cli(db_path: Path, args: list[str]) -> None:
    """`hkma-tracker --db DB ARGS` in this process; its peak memory and the time from the
    command line's import to exit on stderr at exit."""
    import tracker.cli  # noqa: F401 - imported before the clock starts

    started = time.perf_counter()
    atexit.register(
        lambda: print(
            json.dumps({"rss_mb": peak_rss_mb(), "command_s": time.perf_counter() - started}),
            file=sys.stderr,
        )
    )
    sys.argv = ["hkma-tracker", "--db", str(db_path), *args]
    runpy.run_module("tracker", run_name="__main__")


def child(step: str, db_path: Path, versions: int) -> dict[str, Any]:
    """Run one measuring step in a fresh process; its figures and its peak memory."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--step",
            step,
            "--db",
            str(db_path),
            "--versions",
            str(versions),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def step_main(step: str, db_path: Path, versions: int, rest: list[str]) -> None:
    if step == "cli":
        run_cli(db_path, rest)
        return
    measure = {"run": measure_no_change, "change": measure_one_change}.get(step)
    figures = measure(db_path, versions) if measure else measure_search(db_path)
    figures["rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def bounded_commands(db_path: Path, folder: Path) -> dict[str, list[str]]:
    """The commands whose cost must not follow the history's size, each with arguments
    naming what this history holds (its newest amended document, event, record)."""
    db = sqlite3.connect(db_path)
    (doc,) = db.execute(
        "SELECT document_id FROM changes WHERE kind = 'changed' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    (change,) = db.execute(
        "SELECT id FROM changes WHERE NOT baseline ORDER BY id DESC LIMIT 1"
    ).fetchone()
    (record,) = db.execute(
        "SELECT record_id FROM record_members WHERE document_id = ?", [doc]
    ).fetchone()
    common = {
        kind: db.execute(
            "SELECT tag FROM tag_index WHERE kind = ? GROUP BY tag ORDER BY count(*) DESC",
            [kind],
        ).fetchone()[0]
        for kind in ("products", "entity_types")
    }
    db.close()
    config = folder / "subscribers.toml"  # `route` answers per subscriber
    config.write_text(
        '[[subscribers]]\nname = "aml"\nemails = ["aml@example.com"]\n'
        'functions = ["AML/CFT"]\n\n[[subscribers]]\nname = "all"\n'
        'emails = ["all@example.com"]\n',
        encoding="utf-8",
    )
    week = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    page = ["--limit", "50"]  # `changes` as a person reads it: the newest 50
    return {
        "changes --function AML/CFT": ["changes", "--function", "AML/CFT", *page],
        f"changes --product {common['products']}": [
            "changes",
            "--product",
            common["products"],
            *page,
        ],
        f"changes --entity-type {common['entity_types']}": [
            "changes",
            "--entity-type",
            common["entity_types"],
            *page,
        ],
        "changes --source rss": ["changes", "--source", "rss", *page],
        "changes --since (a week)": ["changes", "--since", week, *page],
        "export --since (a week), csv": ["export", "--since", week, "--format", "csv"],
        "deadlines": ["deadlines"],
        "review list --open --limit 50": ["review", "list", "--open", "--limit", "50"],
        "rule spm:IC-7": ["rule", "spm:IC-7"],
        "rule ref:B1/15C (a file reference)": ["rule", "ref:B1/15C"],
        "history (an amended document)": ["history", doc],
        "route (the newest event)": ["--config", str(config), "route", str(change)],
        "record (its record)": ["record", str(record)],
        "records": ["records"],
        "status": ["status"],
        "runs": ["runs"],
        "search money laundering": ["search", "money laundering"],
    }


def commands_row(db_path: Path, folder: Path) -> dict[str, Any]:
    """The start every command pays, and each bounded command's own time: the median of
    three runs, each in a fresh process (the first may find the database's pages on disk,
    the others in the cache, as a database in use has them)."""
    return {
        "start_s": start_time(),
        "commands": {
            name: statistics.median(measure_cli(db_path, *args)["command_s"] for _ in range(3))
            for name, args in bounded_commands(db_path, folder).items()
        },
    }


def print_commands(rows: list[dict[str, Any]]) -> None:
    """One line per command: its own time per size (after the start every command pays,
    measured as `--version`'s wall time and printed first)."""
    sizes = [row["versions"] for row in rows]
    starts = ", ".join(f"{row['start_s']:.2f} s" for row in rows)
    print(f"\nstarting the command line (`--version`, wall): {starts}")
    print("\n| command | " + " | ".join(f"{v:,}" for v in sizes) + " | ratio |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for name in rows[0]["commands"]:
        times = [row["commands"][name] for row in rows]
        print(
            f"| `{name}` | " + " | ".join(f"{t:.2f} s" for t in times)
            + f" | x{times[-1] / times[0]:.2f} |"
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--step")
    parser.add_argument("--db", type=Path)
    parser.add_argument("--versions", type=int)
    parser.add_argument(
        "--replicate-from",
        type=int,
        default=0,
        help="build larger sizes by copying the rows of this size's history (kept in --keep)",
    )
    parser.add_argument(
        "--only-commands",
        action="store_true",
        help="time only the bounded commands, on the kept databases of --sizes",
    )
    args, rest = parser.parse_known_args()
    if args.only_commands:
        rows = []
        for versions in (int(s) for s in args.sizes.split(",")):
            db_path = args.keep / f"scale-{versions}.db"
            open_db(db_path).close()  # migrated to this release's schema, if need be
            rows.append({"versions": versions, **commands_row(db_path, args.keep)})
        print_commands(rows)
        return
    if args.step:
        step_main(args.step, args.db, args.versions, [a for a in rest if a != "--"])
        return
    os.environ.setdefault("HKMA_TRACKER_LOOPBACK_ONLY", "1")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="hkma-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for versions in (int(s) for s in args.sizes.split(",")):
        db_path = folder / f"scale-{versions}.db"
        if not db_path.exists():
            started = time.perf_counter()
            base = folder / f"scale-{args.replicate_from}.db"
            if args.replicate_from and versions > args.replicate_from and base.exists():
                print(f"copying {base} up to {versions} versions", file=sys.stderr)
                replicate(base, db_path, versions // args.replicate_from)
            else:
                print(f"building {versions} versions in {db_path}", file=sys.stderr)
                build(db_path, versions)
            print(f"  built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        open_db(db_path).close()  # migrated to this release's schema, if need be
        settle_documents(db_path)
        # A copied history's timed feed is its base's: the items are generated from that size.
        base_size = args.replicate_from if 0 < args.replicate_from < versions else versions
        run = child("run", db_path, base_size)
        found = child("search", db_path, base_size)
        row = {
            "versions": versions,
            "db_mb": db_path.stat().st_size / 1e6,
            "run_s": run["wall_s"],
            "run_rss_mb": run["rss_mb"],
            "decide_write_s": run["decide_write_s"],
            "links_s": run["links_s"],
            "fetch_choice_s": run["fetch_choice_s"],
            **{k: v for k, v in found.items() if k != "rss_mb"},
            "status_s": measure_cli(db_path, "status")["s"],
        }
        export = measure_cli(db_path, "export", "--format", "csv")
        row.update(export_s=export["s"], export_rss_mb=export["rss_mb"])
        row.update(commands_row(db_path, folder))
        change = child("change", db_path, base_size)  # last: it adds two versions
        row.update(
            change_run_s=change["wall_s"],
            change_records_s=change["records_s"],
            change_rss_mb=change["rss_mb"],
        )
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    print_commands(rows)
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        print(
            f"ratios {large['versions']} / {small['versions']} versions: "
            f"no-change run time x{large['run_s'] / small['run_s']:.2f} (goal <= 2), "
            f"memory x{large['run_rss_mb'] / small['run_rss_mb']:.2f} (goal <= 1.5), "
            f"one-change run x{large['change_run_s'] / small['change_run_s']:.2f}, "
            f"English search p95 x{large['en_p95_ms'] / small['en_p95_ms']:.2f}, "
            f"Chinese search p95 x{large['zh_p95_ms'] / small['zh_p95_ms']:.2f}, "
            f"status x{large['status_s'] / small['status_s']:.2f}, "
            f"export memory x{large['export_rss_mb'] / small['export_rss_mb']:.2f}; "
            f"bytes per version {small['db_mb'] * 1e6 / small['versions']:.0f} -> "
            f"{large['db_mb'] * 1e6 / large['versions']:.0f}"
        )


if __name__ == "__main__":
    main()
