"""Rule-record grouping quality on hand-labelled threads of real HKMA feed items.

The linker runs over every item of the ledger (tests/labelled/feed_items.jsonl, 1,025 items of
HKMA's live feeds); the pairs among each half's labelled items are scored: precision (of the
pairs the linker put in one record, the share the labels put in one thread) and recall.
threads.toml, threads_heldout.toml and threads_fresh.toml are the sets rules may be tuned on
(in-sample; the second and third were each held back until a newer set took their place);
threads_fourth.toml is held back. Run: `python bench/records.py [-v] [--tuning]` (--tuning: the
in-sample sets only, for tuning without a glance at the held-back figure; -v: the in-sample
sets' errors and every record of two or more, and never the held-back set, not even its
figure), or `--scale`: the seconds to group 5k to 100k publications.
Goal: precision >= 0.90, recall >= 0.70.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

from alerts.digest import publication
from tracker.rule_records import NameModel, Publication, group

ROOT = Path(__file__).parents[1]
LABELLED = ROOT / "tests" / "labelled"
SETS = ("threads.toml", "threads_heldout.toml", "threads_fresh.toml", "threads_fourth.toml")
HELD_BACK = "threads_fourth.toml"
GOAL = {"precision": 0.90, "recall": 0.70}
KINDS = {
    "press-release": "press release",
    "circulars": "circular",
    "consultations": "consultation",
    "speeches": "speech",
    "guidelines": "guideline",
    "legislative-council-issues": "LegCo paper",
}


def publication_id(link: str) -> str:
    """One publication, whichever feed item carries it: a BRDR document, else its link (as the
    tracker keys them)."""
    return publication(link)


def publications() -> list[Publication]:
    seen: dict[str, Publication] = {}
    for line in (LABELLED / "feed_items.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        key = publication_id(item["link"])
        if key not in seen:  # the first title recorded (annex items share the link)
            seen[key] = Publication(key, item["title"], item["date"], KINDS[item["feed"]])
    return sorted(seen.values(), key=lambda p: (p.date or "", p.id))


def score(
    threads: list[dict], record_of: dict[str, int], explain: Callable[[str, str], str]
) -> tuple[int, int, int, list[str]]:
    """True positive, false positive and false negative pairs; what went wrong, in words."""
    thread_of = {}
    for n, thread in enumerate(threads):
        for item in thread["items"]:
            thread_of[publication_id(item["link"])] = n
    tp = fp = fn = 0
    wrong = []
    for a, b in combinations(sorted(thread_of), 2):
        together, labelled = record_of[a] == record_of[b], thread_of[a] == thread_of[b]
        tp += together and labelled
        fp += together and not labelled
        fn += labelled and not together
        if together != labelled:
            why = "joined" if together else "missed"
            wrong.append(f"{why} ({threads[thread_of[a]]['name']}): {explain(a, b)}")
    return tp, fp, fn, wrong


def scale() -> None:
    """Seconds to group histories of 5k to 100k publications: the ledger's titles over more
    years (each copy moved by a year and its titles marked as its own, so that a copy's title
    is not taken for another issue of a series), as a run that stored a change regroups them."""
    import resource
    import time

    base = publications()
    for n in (5_000, 20_000, 50_000, 100_000):
        history = [
            Publication(
                f"{p.id}#{i}",
                f"{p.title} (set {i // len(base)})",
                f"{int((p.date or '2026')[:4]) - i // len(base):04d}{(p.date or '2026-01-01')[4:]}",
                p.kind,
            )
            for i, p in ((i, base[i % len(base)]) for i in range(n))
        ]
        started = time.perf_counter()
        records = group(history).records
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"group {n:>6} publications: {took:6.1f} s ({len(records)} records), peak {peak:.0f} MB"
        )


def main(verbose: bool, tuning_only: bool) -> None:
    pubs = publications()
    grouping = group(pubs)
    record_of = {pid: n for n, record in enumerate(grouping.records) for pid in record}
    sizes = [len(r) for r in grouping.records]
    print(
        f"{len(pubs)} publications -> {len(sizes)} records "
        f"({sum(s > 1 for s in sizes)} of two or more, largest {max(sizes)})"
    )
    titles = {p.id: p.title for p in pubs}
    names = NameModel([p.title for p in pubs], [p.date for p in pubs])
    index = {p.id: n for n, p in enumerate(pubs)}

    def explain(a: str, b: str) -> str:
        similarity, term = names.similarity(index[a], index[b])
        return f"{similarity:.2f} {term!r}: {titles[a][:70]!r} ~ {titles[b][:70]!r}"

    for name in [s for s in SETS if s != HELD_BACK] if tuning_only else SETS:
        threads = tomllib.loads((LABELLED / name).read_text(encoding="utf-8"))["threads"]
        tp, fp, fn, wrong = score(threads, record_of, explain)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        role = "held back" if name == HELD_BACK else "in-sample"
        met = p >= GOAL["precision"] and r >= GOAL["recall"]
        print(
            f"{name:22} ({role}): pairwise precision {p:.2f} recall {r:.2f} "
            f"({tp} pairs right, {fp} wrongly joined, {fn} missed) "
            f"{'goal met' if met else 'goal NOT met'}"
        )
        if verbose and name != HELD_BACK:  # the held-back set's errors stay unread
            for line in wrong:
                print("   ", line)
    if verbose:
        for record in grouping.records:
            if len(record) > 1:
                print("record:", " | ".join(titles[i][:60] for i in record))


if __name__ == "__main__":
    if "--scale" in sys.argv[1:]:
        scale()
    else:
        verbose = "-v" in sys.argv[1:]
        main(verbose, verbose or "--tuning" in sys.argv[1:])
