"""Benchmark: memory and time of a run whose topic page links very large HTML documents.

Served from 127.0.0.1: the real AML/CFT page (tracker/demo_site/day1) with three of its rows
pointed at HTML documents of 49 MB (with a Content-Length), 49 MB (read until the connection
closes, no length announced) and 4.9 MB (under the default 5 MB `html_max_bytes`), made of an
HKMA circular's paragraph repeated. Prints wall time, peak RSS of this process (the tracker)
and of the crawl child, the database size and what became of each document. Pass
`--html-max-bytes N` to see another limit (60000000 shows the cost without one).
Run: `python bench/big_html.py` (or `make bench`).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import OTHER_REGULATORS_OFF, peak_rss_mb

from tracker.config import load_config
from tracker.demo import DEMO_PAGE, DEMO_SITE
from tracker.loopback import Override, RecordedSite
from tracker.run import run

HKMA = "https://www.hkma.gov.hk"
PARAGRAPH = (
    "<p>Authorized institutions should review their controls against the guidance on "
    "combating high-end money laundering and report their progress to the HKMA.</p>\n"
)
ROW = re.compile(
    r'<div class="content-wrapper multiple-wrapper filter-table-row".*?'
    r"</tr></tbody></table></div></div>",
    re.DOTALL,
)
DOCUMENTS = {  # path -> (size in bytes, whether the size is announced)
    "/eng/bench/huge-announced/": (49_000_000, True),
    "/eng/bench/huge-unannounced/": (49_000_000, False),
    "/eng/bench/large/": (4_900_000, True),
}


def page(size: int) -> bytes:
    body = PARAGRAPH * (size // len(PARAGRAPH))
    return f"<html><body><h1>Large document</h1>{body}</body></html>".encode()


def measure(config_path: str, db: str, base_url: str) -> None:
    """One run, then its figures as a JSON line on stdout."""
    started = time.perf_counter()
    report = run(load_config(config_path, [f"{HKMA}={base_url}"]), db)
    figures = {
        "exit": int(report.exit_status),
        "wall_s": time.perf_counter() - started,
        "documents": report.documents.counts if report.documents else {},
        "tracker_mb": peak_rss_mb(),
        # An upper bound: Linux counts in a child's peak what it shared with this process
        # when it was forked.
        "child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(figures))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--html-max-bytes", type=int, default=None)
    parser.add_argument("--measure", nargs=3, metavar=("CONFIG", "DB", "BASE_URL"))
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return 0
    with tempfile.TemporaryDirectory(prefix="hkma-bench-") as tmp:
        root = Path(tmp) / "site"
        shutil.copytree(DEMO_SITE / "day1", root)
        index = root / DEMO_PAGE.split("hkma.gov.hk/", 1)[1] / "index.html"
        html = index.read_text(encoding="utf-8")
        pdf_rows = [r for r in ROW.findall(html) if ".pdf" in r]
        rows = [
            re.sub(r'href="[^"]+\.pdf"', f'href="{path}"', pdf_rows[n], count=1)
            for n, path in enumerate(DOCUMENTS)
        ]
        html = ROW.sub("", html)
        anchor = '<div class="content-wrapper multiple-wrapper filter-table" id="guidance-papers">'
        index.write_text(html.replace(anchor, "".join(rows) + anchor, 1), encoding="utf-8")
        limit = f"html_max_bytes = {args.html_max_bytes}\n" if args.html_max_bytes else ""
        config_path = Path(tmp) / "bench.toml"
        config_path.write_text(
            "[crawl]\ndownload_delay = 0\nretries = 0\ntimeout = 120\n"
            f"{OTHER_REGULATORS_OFF}"
            "[sources.rss]\nenabled = false\n[sources.brdr]\nenabled = false\n"
            "[sources.press_releases]\nenabled = false\n"
            f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n'
            f"[documents]\n{limit}"
            f'[digest]\nfolder = "{(Path(tmp) / "digests").as_posix()}"\n',
            encoding="utf-8",
        )
        db = Path(tmp) / "bench.db"
        with RecordedSite(root) as site:
            for path, (size, announced) in DOCUMENTS.items():
                site.overrides[path] = Override(body=page(size), sized=announced)
            # The run in a process of its own: the server's copies of the bodies stay out of
            # its figures.
            measured = subprocess.run(
                [sys.executable, __file__, "--measure", str(config_path), str(db), site.base_url],
                capture_output=True,
                text=True,
                check=True,
            )
        figures = json.loads(measured.stdout.splitlines()[-1])
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT fetch_url, fetch_status, fetch_reason, "
                "length(json_extract(document_content, '$.text')) FROM documents_full "
                "WHERE fetch_status IS NOT NULL"
            ).fetchall()
        db_mb = sum(p.stat().st_size for p in Path(tmp).glob("bench.db*")) / 1e6
    print(f"run: exit {figures['exit']}, wall {figures['wall_s']:.1f} s, {figures['documents']}")
    print(
        f"peak RSS: tracker {figures['tracker_mb']:.0f} MB, "
        f"largest child (crawl) at most {figures['child_mb']:.0f} MB; database {db_mb:.1f} MB"
    )
    for url, status, reason, chars in rows:
        what = f"{chars:,} characters kept" if chars else reason
        print(f"  {url.removeprefix(HKMA)}: {status}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
