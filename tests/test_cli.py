"""The command line: exit codes, --json output, history/diff/status, help for every command."""

import json
import shutil

import click
import pytest
from click.testing import CliRunner
from conftest import DEMO_PAGE, WWW_ONLY

from spiders.normalize import UNPRINTABLE
from tracker.cli import cli
from tracker.demo import DEMO_SITE
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite

AMENDED = "rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A database after real day 1 and day 2 runs through the CLI, and the day 2 output."""
    tmp = tmp_path_factory.mktemp("cli")
    root = tmp / "site"
    shutil.copytree(DEMO_SITE / "day1", root)
    config = tmp / "c.toml"
    config.write_text(
        f'[crawl]\ndownload_delay = 0\nretries = 0\n[sources.pages]\nurls = ["{DEMO_PAGE}"]\n'
        f'[digest]\nfolder = "{(tmp / "digests").as_posix()}"\n{WWW_ONLY}',
        encoding="utf-8",
    )
    db = tmp / "h.db"
    runner = CliRunner()
    with RecordedSite(root) as site:
        base = ["--config", str(config), "--db", str(db)]
        mirror = ["--mirror", f"https://www.hkma.gov.hk={site.base_url}"]
        day1 = runner.invoke(cli, [*base, "run", *mirror, "--json"])
        shutil.rmtree(root)
        shutil.copytree(DEMO_SITE / "day2", root)
        day2 = runner.invoke(cli, [*base, "run", *mirror])
    return {"db": db, "config": config, "day1": day1, "day2": day2}


def invoke(history, *args):
    return CliRunner().invoke(
        cli, ["--config", str(history["config"]), "--db", str(history["db"]), *args]
    )


def test_run_prints_a_summary_per_source_and_exits_0(history):
    assert history["day1"].exit_code == 0, history["day1"].output
    lines = [json.loads(line) for line in history["day1"].stdout.splitlines()]
    assert [(s["source"], s["healthy"], s["new"]) for s in lines] == [
        ("rss", True, 49),
        ("pages", True, 84),
    ]
    assert history["day2"].exit_code == 0
    assert "pages: healthy; 84 items, 1 new, 2 changed, 1 removed" in history["day2"].stdout
    assert "digest: " in history["day2"].stdout


def test_changes_json_has_the_documented_fields_newest_first(history):
    result = invoke(history, "changes", "--json", "--kind", "changed")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3
    assert {
        "id",
        "kind",
        "source",
        "document_id",
        "title",
        "url",
        "detected_at",
        "fields",
    } <= records[0].keys()
    assert [r["id"] for r in records] == sorted((r["id"] for r in records), reverse=True)
    amended = next(r for r in records if r["document_id"] == AMENDED)
    assert amended["fields"] == ["title"]
    assert amended["url"] == "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN"


def test_changes_filters(history, monkeypatch):
    everything = invoke(history, "changes", "--json", "--include-baseline").stdout.splitlines()
    assert len(everything) == 133 + 11
    # By default the 133 events of day 1, the baseline, are left out, and said to be.
    news = invoke(history, "changes", "--json")
    assert len(news.stdout.splitlines()) == 11
    assert "133 baseline events left out" in news.stderr
    monkeypatch.setattr("tracker.cli.BASELINE_COUNTED", 100)  # counted so far, and said so
    assert "more than 100 baseline events left out" in invoke(history, "changes").stderr
    assert (
        len(
            invoke(
                history, "changes", "--json", "--source", "pages", "--kind", "removed"
            ).stdout.splitlines()
        )
        == 1
    )
    assert len(invoke(history, "changes", "--json", "--limit", "2").stdout.splitlines()) == 2
    assert invoke(history, "changes", "--since", "2999-01-01").stdout == ""


def test_every_change_names_its_regulator_and_filters_by_it(history):
    """Issue 25: HKMA's changes say so in JSON and the export; `--regulator` takes a code in
    any case and refuses one it does not know, naming those it does."""
    records = [
        json.loads(line) for line in invoke(history, "changes", "--json").stdout.splitlines()
    ]
    assert {r["regulator"] for r in records} == {"HKMA"}
    hkma = invoke(history, "changes", "--json", "--regulator", "hkma")
    assert len(hkma.stdout.splitlines()) == len(records)
    assert invoke(history, "changes", "--regulator", "SFC").stdout == ""
    unknown = invoke(history, "changes", "--regulator", "FSB")
    assert unknown.exit_code == 2
    assert "--regulator: 'FSB' is not one of the known names (HKMA, IA, SFC)" in unknown.output
    header, first, *_ = invoke(history, "export", "--format", "csv").stdout.splitlines()
    columns = header.split(",")
    assert first.split(",")[columns.index("regulator")] == "HKMA"
    for command in (["deadlines"], ["review", "list"]):
        assert invoke(history, *command, "--regulator", "SFC", "--json").stdout == ""


def test_history_and_diff_of_an_amended_circular(history):
    result = invoke(history, "history", AMENDED, "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == ["version", "version", "change", "change"]
    assert records[1]["title"].endswith("Generative AI Sandbox")

    diff = invoke(history, "diff", AMENDED)
    assert diff.exit_code == 0
    assert (
        "-Generative Artificial Intelligence Sandbox: Second Cohort Annex: Arrangement for the Second Cohort of Generative A.I. Sandbox (“Sandbox”)"
        in diff.stdout
    )
    assert (
        "+Generative Artificial Intelligence Sandbox: Second Cohort Annex: Arrangement for the Second Cohort of Generative AI Sandbox"
        in diff.stdout
    )

    # A URL works where it names exactly one document.
    by_url = invoke(
        history, "history", "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN"
    )
    assert by_url.exit_code == 0 and AMENDED in by_url.stdout


def test_unknown_document_is_a_usage_error(history):
    result = invoke(history, "history", "rss:nothing")
    assert result.exit_code == 2
    assert "no document 'rss:nothing'" in result.output


def test_status_reports_each_source(history):
    result = invoke(history, "status", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    rows = {r["source"]: r for r in records if r["type"] == "source"}
    assert rows["pages"]["next_scheduled_run"] and rows["pages"]["overdue"] == ""
    assert {"type": "outbox", "pending": 0, "failed_attempts": 0} in records
    assert rows["pages"]["healthy"] is True and rows["pages"]["reason"] == ""
    assert rows["pages"]["documents"] == 84  # the page and 83 rows: one row came, one went
    assert rows["rss"]["last_run_id"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--source", "fsb"], "unknown source 'fsb'"),
        (["run", "--mirror", "www.hkma.gov.hk"], "expected ORIGIN=BASE"),
        (["--config", "/nonexistent/c.toml", "run"], "config file /nonexistent/c.toml not found"),
        (
            ["--db", "/nonexistent/h.db", "changes"],
            "database /nonexistent/h.db: its folder /nonexistent does not exist",
        ),
        (["changes", "--kind", "deleted"], "--kind: 'deleted' is not one of the known names"),
        (["changes", "--since", "last week"], "--since 'last week': expected an ISO date"),
        (["rule", "nonsense"], "'nonsense' is not an SPM module (IC-6), a circular reference"),
    ],
)
def test_bad_usage_exits_2_with_a_clear_message(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "h.db"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bad_config_key_exits_2_naming_the_key(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[crawl]\nspeed = 1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "run"])
    assert result.exit_code == 2
    assert "unknown key 'crawl.speed'" in result.output


def test_every_command_has_help_with_an_example():
    for name, command in cli.commands.items():
        assert isinstance(command, click.Command)
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example: hkma-tracker" in result.output, f"{name} has no example"
    run_help = CliRunner().invoke(cli, ["run", "--help"]).output
    for status in ExitStatus:  # every exit status, listed from the one definition
        assert f"{int(status):<3} {status.meaning[:40]}" in " ".join(run_help.split("\n")), status


def test_unreachable_hkma_exits_3_naming_every_listing(tmp_path):
    # Port 9 (discard) on loopback: nothing listens, so every connection is refused.
    config = tmp_path / "c.toml"
    config.write_text("[crawl]\ndownload_delay = 0\nretries = 0\n", encoding="utf-8")
    closed = "http://127.0.0.1:9"
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "--db",
            str(tmp_path / "h.db"),
            "run",
            *("--mirror", f"https://www.hkma.gov.hk={closed}"),
            *("--mirror", f"https://brdr.hkma.gov.hk={closed}"),
            *("--mirror", f"https://api.hkma.gov.hk={closed}"),
        ],
    )
    assert result.exit_code == 3, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "rss: UNHEALTHY; 0 items, 0 new, 0 changed, 0 removed"
    refused = [line for line in lines if line.endswith(": unreachable: connection refused")]
    assert len(refused) == 18  # six feeds, two topic pages, nine BRDR types, the press API
    assert not (tmp_path / "digests").exists()


def test_the_terminal_never_gets_control_or_bidi_characters(history):
    import sqlite3

    dirty = "Circular\x1b[2J\x1b]8;;https://evil.example/\x07 on\u202e fraud\x9b"
    with sqlite3.connect(history["db"]) as conn:  # as a history written before the spiders cleaned
        (change, title) = conn.execute(
            "SELECT id, title FROM changes ORDER BY id DESC LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE changes SET title = ? WHERE id = ?", [dirty, change])
    try:
        for args in (("changes", "--limit", "1"), ("changes", "--limit", "1", "--json")):
            output = invoke(history, *args).output
            assert (
                "Circular\\u001b[2J\\u001b]8;;https://evil.example/\\u0007 on\\u202e fraud\\u009b"
                in output
            )
            assert not UNPRINTABLE.search(output)
        assert (
            json.loads(invoke(history, "changes", "--limit", "1", "--json").stdout)["title"]
            == dirty
        )
    finally:
        with sqlite3.connect(history["db"]) as conn:
            conn.execute("UPDATE changes SET title = ? WHERE id = ?", [title, change])


def test_small_truths_of_status_runs_digest_and_deadline(history, tmp_path):
    status = invoke(history, "status").stdout
    assert "None" not in status and "HKT" in status and " UTC" not in status
    runs = invoke(history, "runs").stdout
    assert "None s" not in runs and "HKT" in runs
    both = CliRunner().invoke(cli, ["--db", str(history["db"]), "digest", "--send", "--dry-run"])
    assert both.exit_code == 2 and "give either --send or --dry-run" in both.stderr
    # --deadline 0 means no deadline, as its help says (the site is gone: the run is unhealthy).
    run = CliRunner().invoke(
        cli,
        [
            "--config",
            str(history["config"]),
            "--db",
            str(tmp_path / "h.db"),
            "run",
            "--deadline",
            "0",
            "--mirror",
            "https://www.hkma.gov.hk=http://127.0.0.1:9",
        ],
    )
    assert run.exit_code == int(ExitStatus.SOURCE_UNHEALTHY), run.output


def test_a_dry_run_with_nothing_due_says_so(tmp_path):
    from storage.db import open_db

    db = tmp_path / "h.db"
    open_db(db).close()
    result = CliRunner().invoke(cli, ["--db", str(db), "digest", "--dry-run"])
    assert result.exit_code == 0
    assert "no digest due: no change waits for a digest" in result.output


@pytest.mark.parametrize(
    "failure",
    [
        __import__("sqlite3").OperationalError("database or disk is full"),
        OSError(28, "No space left on device", "/srv/hkma/digests/x.eml"),
    ],
    ids=["sqlite", "os"],
)
def test_a_full_disk_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys, failure):
    import tracker.cli_compliance as compliance
    from storage.db import open_db
    from tracker.cli import main

    db = tmp_path / "h.db"
    open_db(db).close()

    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr(compliance, "add_review", full)
    monkeypatch.setattr("sys.argv", ["hkma-tracker", "--db", str(db), "review", "set", "1", "open"])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 1
    said = capsys.readouterr().err
    assert "hkma-tracker: disk full writing" in said and "Traceback" not in said
    assert "nothing stored was lost" in said


def test_commands_that_only_read_do_not_load_the_crawler():
    """Scrapy and Twisted take most of a second to import, APScheduler, Jinja2 and icalendar
    another 150 ms: `changes`, `rule` and the rest start without them (the bounded commands
    answer in well under a second); what schedules, renders or writes a calendar loads its own."""
    import subprocess
    import sys

    heavy = ("scrapy", "twisted", "apscheduler", "jinja2", "icalendar")
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, tracker.cli; print(sorted(set({heavy!r}) & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_status_says_when_the_history_is_tagged_by_another_taxonomy(history, tmp_path):
    """After an upgrade that changes the taxonomy, documents keep the tags the old one gave
    until `retag`: status says so and what to run, and stops saying it once they are retagged."""
    import sqlite3

    db = tmp_path / "copy.db"
    shutil.copy(history["db"], db)
    base = ["--config", str(history["config"]), "--db", str(db)]
    shown = CliRunner().invoke(cli, [*base, "status", "--json"]).stdout.splitlines()
    (tags,) = [r for r in map(json.loads, shown) if r["type"] == "tags"]
    assert tags["other_taxonomies"] == [] and tags["taxonomy"]
    assert "run `hkma-tracker retag`" not in CliRunner().invoke(cli, [*base, "status"]).output
    with sqlite3.connect(db) as conn:  # as an older release left them
        conn.execute("UPDATE documents SET taxonomy_version = '2020.01.01-1' WHERE rowid % 2 = 0")
    said = CliRunner().invoke(cli, [*base, "status"]).output
    assert (
        f"tags: some documents carry tags of taxonomy 2020.01.01-1, not of the one in force "
        f"({tags['taxonomy']}): run `hkma-tracker retag`" in said
    ), said
    assert CliRunner().invoke(cli, [*base, "retag"]).exit_code == 0
    assert "retag" not in CliRunner().invoke(cli, [*base, "status"]).output
