"""Benchmark: the crawl engines over bench/rerun.py's generated 2,000-document site.

The same first run (20 topic pages, 1,980 PDFs fetched and read) with the local engine, with
one scrapyd node and with two, all on this machine (127.0.0.1): wall time, requests served,
and the tracker's own peak memory (each measured run in a process of its own, so that one's
peak is not another's). Run: `python bench/scrapyd.py`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import OTHER_REGULATORS_OFF
from rerun import HKMA, build_site

from tracker.config import load_config
from tracker.loopback import RecordedSite
from tracker.run import run
from tracker.scrapyd import local_node


def config_text(tmp: Path, urls: list[str], engine: str, nodes: list[str]) -> str:
    pages = ", ".join(f'"{u}"' for u in urls)
    listed = ", ".join(f'"{n}"' for n in nodes) or '"http://127.0.0.1:9"'
    return (
        f'[crawl]\ndownload_delay = 0\nretries = 0\nengine = "{engine}"\n'
        f"{OTHER_REGULATORS_OFF}"
        f"[scrapyd]\nurls = [{listed}]\npoll_interval = 0.2\n"
        "[sources.rss]\nenabled = false\n"
        "[sources.brdr]\nenabled = false\n[sources.press_releases]\nenabled = false\n"
        "[documents]\nmax_per_run = 5000\n"
        f"[sources.pages]\nurls = [{pages}]\n"
        f'[digest]\nfolder = "{(tmp / "digests").as_posix()}"\n'
    )


def one_run(config_path: str, mirror: str, db: str) -> None:
    """A child: one run, its figures as JSON on stdout."""
    started = time.perf_counter()
    report = run(load_config(config_path, [mirror]), db)
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "documents": sum(len(p.seen) for p in report.plans),
                "texts": report.documents.counts.get("fetched", 0) if report.documents else 0,
                "healthy": all(p.healthy for p in report.plans),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hkma-bench-scrapyd-") as name:
        tmp = Path(name)
        urls = build_site(tmp / "site")
        rows = []
        with (
            RecordedSite(tmp / "site") as site,
            local_node(tmp / "node-a") as node_a,
            local_node(tmp / "node-b") as node_b,
        ):
            for label, engine, nodes in (
                ("local", "local", []),
                ("1 node", "scrapyd", [node_a]),
                ("2 nodes", "scrapyd", [node_a, node_b]),
            ):
                path = tmp / f"{label.replace(' ', '-')}.toml"
                path.write_text(config_text(tmp, urls, engine, nodes), encoding="utf-8")
                db = tmp / f"{label.replace(' ', '-')}.db"
                site.reset_counters()
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        str(path),
                        f"{HKMA}={site.base_url}",
                        str(db),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(child.stdout.strip().splitlines()[-1])
                figures.update(label=label, requests=site.requests)
                rows.append(figures)
                print(
                    f"{label:8} wall {figures['wall_s']:6.1f} s  requests {site.requests:5d}  "
                    f"documents {figures['documents']:5d}  texts {figures['texts']:5d}  "
                    f"tracker peak {figures['peak_mb']:5.0f} MB  healthy {figures['healthy']}"
                )
    local = rows[0]
    for row in rows[1:]:
        print(
            f"{row['label']}/local: wall {row['wall_s'] / local['wall_s']:.2f}, "
            f"tracker peak {row['peak_mb'] / local['peak_mb']:.2f}"
        )
    ok = all(r["healthy"] and r["texts"] == local["texts"] for r in rows)
    print("OK: every engine read every document" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one_run(*sys.argv[2:5])
        sys.exit(0)
    sys.exit(main())
