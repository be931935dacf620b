"""The analyst's history: stored tags and retag, filters and export, search with hostile input,
links and rule timelines, and the schema as a contract. One history is built per module from
real crawls: the recorded site (day 1, day 2) and the BRDR fake with a new SPM version."""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import DEMO_PAGE, FIXTURES, OTHER_REGULATORS_OFF

from storage.db import open_db
from storage.search import cjk_terms, search
from tracker.cli import cli
from tracker.demo import DEMO_SITE
from tracker.demo_apis import CIRCULAR, BrdrFake, DocumentsFake, load, make_pdf
from tracker.loopback import Override, RecordedSite

# A circular that names the module in its text; served for one topic-page row.
CIRCULAR_PDF = "/media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf"
IC6_LINES = [line.replace("CR-G-7 and IC-6", "IC-6") for line in CIRCULAR]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyst")
    root = tmp / "www"
    shutil.copytree(DEMO_SITE / "day1", root)
    records = load("brdr-records.json")
    fake = BrdrFake(records)
    config = tmp / "c.toml"
    config.write_text(
        "[crawl]\ndownload_delay = 0\nretries = 0\n"
        f'[sources.pages]\nurls = ["{DEMO_PAGE}"]\n'
        '[sources.brdr]\ndoc_types = ["SPM", "CIR"]\n'
        "[sources.press_releases]\nenabled = false\n"
        f"{OTHER_REGULATORS_OFF}"
        f'[digest]\nfolder = "{(tmp / "digests").as_posix()}"\n',
        encoding="utf-8",
    )
    db = tmp / "h.db"
    with RecordedSite(root) as www, RecordedSite(tmp) as brdr:
        www.fallback = DocumentsFake()
        www.overrides[CIRCULAR_PDF] = Override(
            body=make_pdf(IC6_LINES), content_type="application/pdf"
        )
        brdr.handlers[BrdrFake.path] = fake
        brdr.fallback = DocumentsFake()
        base = ["--config", str(config), "--db", str(db)]
        mirrors = [
            *("--mirror", f"https://www.hkma.gov.hk={www.base_url}"),
            *("--mirror", f"https://brdr.hkma.gov.hk={brdr.base_url}"),
        ]
        runner = CliRunner()
        first = runner.invoke(cli, [*base, "run", "--full-sweep", *mirrors])
        assert first.exit_code == 0, first.output
        # Day 2: the recorded site's changes, and a new version of SPM module IC-6.
        shutil.rmtree(root)
        shutil.copytree(DEMO_SITE / "day2", root)
        ic6 = next(r for r in records if r.get("spmCode") == "IC-6")
        revised = copy.deepcopy(ic6)
        revised.update(docId="20261020-70-EN", issueDateStr="20 Oct 2026", issueDate=1792425600000)
        records.append(revised)
        second = runner.invoke(cli, [*base, "run", "--full-sweep", *mirrors])
        assert second.exit_code == 0, second.output
    return {"db": db, "config": config, "tmp": tmp}


def invoke(history, *args):
    result = CliRunner().invoke(
        cli, ["--config", str(history["config"]), "--db", str(history["db"]), *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def lines(output):
    return [json.loads(line) for line in output.splitlines()]


def query(history, sql, params=()):
    with sqlite3.connect(history["db"]) as conn:
        return conn.execute(sql, params).fetchall()


def test_every_document_carries_explained_tags(history):
    untagged = query(history, "SELECT count(*) FROM documents WHERE taxonomy_version IS NULL")
    assert untagged == [(0,)]
    (evidence,) = query(
        history,
        "SELECT evidence FROM tags t JOIN documents d ON d.id = t.document_id "
        "WHERE d.title = 'Guidance on combating high-end money laundering' "
        "AND t.kind = 'functions' AND t.tag = 'AML/CFT' ORDER BY t.version_id DESC LIMIT 1",
    )[0]
    assert {"rule": "strong 'money laundering'", "where": "title", "weight": 3.0} in json.loads(
        evidence
    )


def test_changes_carry_tags_and_filter_by_them(history):
    aml = lines(invoke(history, "changes", "--json", "--function", "AML/CFT", "--kind", "new"))
    assert aml and all("AML/CFT" in c["functions"] for c in aml)
    assert {"functions", "products", "entity_types"} <= aml[0].keys()
    spm = lines(invoke(history, "changes", "--json", "--source", "brdr", "--kind", "changed"))
    # The new version (listing), then its new PDF text (documents phase).
    assert [(c["document_id"], c["significance"], c["fields"][-1]) for c in spm] == [
        ("brdr:spm:IC-6", "substantive", "document.text"),
        ("brdr:spm:IC-6", "substantive", "url"),
    ]
    versions = [
        r
        for r in lines(invoke(history, "history", "brdr:spm:IC-6", "--json"))
        if r["type"] == "version"
    ]
    # Each version carries the tags of that version: the register's record names no subject
    # (an IC module is not by its code alone a Risk matter), its text read later does (the
    # served PDF's subject line is about money laundering; its text names credit data).
    assert versions[0]["functions"] == []
    assert {"AML/CFT", "Credit"} <= set(versions[1]["functions"])
    assert all("Banking" in v["products"] for v in versions)


def test_filters_take_aliases_and_refuse_what_matches_nothing(history):
    everything = ("changes", "--json", "--include-baseline")
    by_name = invoke(history, *everything, "--function", "AML/CFT")
    assert by_name and invoke(history, *everything, "--function", "aml") == by_name
    banks = invoke(history, *everything, "--entity-type", "Banks (authorized institutions)")
    assert banks and invoke(history, *everything, "--entity-type", "banks") == banks
    assert invoke(history, *everything, "--source", "BRDR") == invoke(
        history, *everything, "--source", "brdr"
    )
    for command in ("changes", "export"):
        for option, value in (
            ("--function", "AML-ish"),
            ("--product", "wealthy"),
            ("--entity-type", "Bankers"),
            ("--source", "foo"),
            ("--kind", "deleted"),
        ):
            result = CliRunner().invoke(cli, ["--db", str(history["db"]), command, option, value])
            assert result.exit_code == 2, (command, option, result.output)
            assert f"{option}: {value!r} is not one of the known names (" in result.stderr
            assert result.stdout == ""


@pytest.mark.parametrize("option", ["--function", "--product", "--entity-type"])
def test_a_page_of_a_common_tag_is_the_page_of_a_rare_one(history, monkeypatch, option):
    """A filter on a tag most documents carry reads the newest events and checks each; on a
    rarer one, the documents carrying it. Both ways give the same events."""
    kind = option[2:].replace("-", "_") + "s"  # --entity-type: entity_types
    ((tag,),) = query(
        history,
        "SELECT tag FROM tag_index WHERE kind = ? GROUP BY tag ORDER BY count(*) DESC LIMIT 1",
        [kind],
    )
    args = ("changes", option, tag, "--limit", "5", "--include-baseline", "--json")
    monkeypatch.setattr("storage.history.TAG_DRIVEN_AT_MOST", 10**9)
    from_the_index = lines(invoke(history, *args))
    monkeypatch.setattr("storage.history.TAG_DRIVEN_AT_MOST", 0)
    row_by_row = lines(invoke(history, *args))
    assert len(row_by_row) == 5 and row_by_row == from_the_index


def test_baseline_is_left_out_unless_asked_for_and_marked_where_shown(history):
    result = CliRunner().invoke(cli, ["--db", str(history["db"]), "changes", "--json"])
    shown = lines(result.stdout)
    ((baseline,),) = query(history, "SELECT count(*) FROM changes WHERE baseline")
    cosmetic = query(
        history, "SELECT count(*) FROM changes WHERE baseline AND significance != 'substantive'"
    )[0][0]
    assert baseline and not any(c["baseline"] for c in shown)
    assert f"{baseline - cosmetic} baseline events left out (--include-baseline" in result.stderr
    everything = lines(invoke(history, "changes", "--json", "--include-baseline"))
    assert len(everything) == len(shown) + baseline - cosmetic
    text = invoke(history, "changes", "--include-baseline", "--include-cosmetic")
    assert "(baseline)" in text
    rows = list(csv.DictReader(io.StringIO(invoke(history, "export", "--include-baseline"))))
    assert {"baseline", "significance", "significance_reason"} <= rows[0].keys()
    assert {r["baseline"] for r in rows} == {"True", "False"}


def test_export_csv_and_json(history):
    rows = list(
        csv.DictReader(
            io.StringIO(
                invoke(
                    history,
                    "export",
                    "--include-baseline",
                    "--product",
                    "Stablecoins/Virtual Assets",
                )
            )
        )
    )
    assert rows and all("Stablecoins/Virtual Assets" in r["products"].split("; ") for r in rows)
    assert list(rows[0]) == [
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
        "record_id",
    ]
    assert all(r["record_id"].isdigit() for r in rows)  # every change's rule record
    as_json = lines(invoke(history, "export", "--format", "json", "--limit", "3"))
    assert len(as_json) == 3 and isinstance(as_json[0]["functions"], list)


@pytest.mark.parametrize(
    "hostile", ["AND OR NOT", "money NEAR(", "title:x", "'; DROP TABLE documents; --", 'a"b']
)
def test_search_takes_every_input_literally(history, hostile):
    invoke(history, "search", hostile, "--json")  # exit 0: no FTS syntax error, no injection
    assert query(history, "SELECT count(*) > 0 FROM documents") == [(1,)]


@pytest.mark.parametrize("wordless", ["", "   ", '"', "*", "(((", "^", "?!/..."])
def test_a_search_with_no_word_gets_one_answer(history, wordless):
    result = CliRunner().invoke(cli, ["--db", str(history["db"]), "search", wordless])
    assert result.exit_code == 2 and "search: give at least one word" in result.output


def test_search_finds_titles_and_document_text(history):
    hits = lines(invoke(history, "search", "money laundering", "--json"))
    assert any(h["title"] == "Guidance on combating high-end money laundering" for h in hits)
    in_text = lines(invoke(history, "search", "faithfully", "--json", "--limit", "500"))
    assert in_text and all(h["snippet"] for h in in_text)


def test_search_finds_other_forms_phrases_and_prefixes_and_says_what_it_left_out(history):
    hits = lines(invoke(history, "search", "stablecoins", "--json", "--limit", "500"))
    assert any("Stablecoin-related" in h["title"] for h in hits)
    phrase = lines(invoke(history, "search", '"money laundering"', "--json", "--limit", "500"))
    assert phrase and len(phrase) <= len(
        lines(invoke(history, "search", "money laundering", "--json", "--limit", "500"))
    )
    assert any("[" in h["snippet"] for h in phrase)  # the match, highlighted
    prefix = lines(invoke(history, "search", "launder*", "--json", "--limit", "500"))
    assert {h["id"] for h in phrase} <= {h["id"] for h in prefix}

    runner = CliRunner()
    cut = runner.invoke(cli, ["--db", str(history["db"]), "search", "money", "--limit", "2"])
    total = len(lines(invoke(history, "search", "money", "--json", "--limit", "10000")))
    assert cut.exit_code == 0 and total > 2
    assert f"2 of {total} shown (--limit shows more)" in cut.stderr
    none = runner.invoke(cli, ["--db", str(history["db"]), "search", "zzyzx"])
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "no document matches\n")


def test_search_ranks_the_newest_matches_past_its_window_and_says_so(history, monkeypatch):
    db = open_db(history["db"])
    best = search(db, "money", 10_000)
    assert best.newest_ranked is None and len(best.hits) > 4  # every match ranked
    rowid = dict(db.execute("SELECT id, rowid FROM documents").fetchall())
    newest = sorted((h["id"] for h in best.hits), key=rowid.get)[-4:]
    windowed = search(db, "money", 2, window=4)
    assert windowed.newest_ranked == 4
    assert [h["id"] for h in windowed.hits] != [h["id"] for h in best.hits[:2]]  # it mattered
    assert [h["id"] for h in windowed.hits] == [h["id"] for h in best.hits if h["id"] in newest][:2]
    assert search(db, "money", 2, window=len(best.hits)).hits == best.hits[:2]  # none left out

    monkeypatch.setattr("storage.search.RANK_WINDOW", 4)
    cut = CliRunner().invoke(cli, ["--db", str(history["db"]), "search", "money", "--limit", "2"])
    assert cut.exit_code == 0
    assert f"2 of {len(best.hits)} shown (--limit shows more); the best of the newest 4 " in (
        cut.stderr
    )


def test_search_in_chinese(history):
    db = open_db(history["db"])
    title = "打擊洗錢指引"  # written as the tracker writes a title: with its Chinese index terms
    db.execute(
        "UPDATE documents SET title = ?, cjk_title = ? WHERE id = (SELECT min(id) FROM documents)",
        [title, cjk_terms(title)],
    )
    db.commit()
    db.close()
    hits = lines(invoke(history, "search", "洗錢", "--json"))
    assert [h["title"] for h in hits] == ["打擊洗錢指引"]


def test_rule_timeline_of_an_spm_module(history):
    entries = [e for e in lines(invoke(history, "rule", "IC-6", "--json")) if e["type"] == "entry"]
    kinds = [(e["entry"], e["document_id"]) for e in entries]
    assert ("issued", "brdr:spm:IC-6") in kinds
    assert ("revised", "brdr:spm:IC-6") in kinds
    # The circular whose text names IC-6 is on the timeline, with its effective date.
    row = f"pages:{DEMO_PAGE}|https://www.hkma.gov.hk{CIRCULAR_PDF}"
    assert ("circular", row) in kinds
    assert any(e["entry"] == "effective" and e["date"] == "2026-03-01" for e in entries)
    assert [e["date"] or "" for e in entries] == sorted(e["date"] or "" for e in entries)
    links = query(
        history,
        "SELECT kind, evidence FROM links WHERE document_id = ? AND key = 'spm:IC-6'",
        [row],
    )
    assert links == [("mentions", "document text")]


def test_rule_for_an_unknown_key_is_a_usage_error(history):
    result = CliRunner().invoke(cli, ["--db", str(history["db"]), "rule", "spm:ZZ-9"])
    assert result.exit_code == 2 and "no document is linked to 'spm:ZZ-9'" in result.output


def test_retag_after_a_taxonomy_change_records_what_moved(history, tmp_path):
    from tracker.tagging import DEFAULT_TAXONOMY

    taxonomy = tmp_path / "taxonomy.toml"
    text = DEFAULT_TAXONOMY.read_text(encoding="utf-8").replace(
        'version = "', 'version = "test-', 1
    )
    taxonomy.write_text(
        text.replace("[functions.Fraud]", '[functions."Fraud and scams"]'), encoding="utf-8"
    )
    config = tmp_path / "c.toml"
    config.write_text(
        history["config"].read_text(encoding="utf-8")
        + f'[tagging]\ntaxonomy = "{taxonomy.as_posix()}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--db", str(history["db"]), "retag", "--json"]
    )
    assert result.exit_code == 0, result.output
    (summary,) = lines(result.stdout)
    assert summary["taxonomy_version"].startswith("test-")
    assert query(
        history, "SELECT count(*) FROM documents WHERE taxonomy_version NOT LIKE 'test-%'"
    ) == [(0,)]
    assert query(history, "SELECT count(DISTINCT taxonomy_version) FROM tags") == [(1,)]
    # A renamed tag: every document that had it, its old name removed and the new one added.
    moved = query(history, "SELECT added, removed FROM tag_changes WHERE taxonomy_to LIKE 'test-%'")
    assert moved and summary["documents_with_new_tags"] == len(moved)
    assert all(
        json.loads(added) == {"functions": ["Fraud and scams"]}
        and json.loads(removed) == {"functions": ["Fraud"]}
        for added, removed in moved
    )
    assert query(history, "SELECT count(*) FROM tags WHERE tag = 'Fraud'") == [(0,)]


SCHEMA = FIXTURES / "schema.sql"


def schema_of(db_path) -> str:
    """Every table, index, view and trigger as SQLite holds it (the FTS shadow tables aside)."""
    rows = query(
        db_path,
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'documents_fts_%' ORDER BY type, name",
    )
    return "".join(f"-- {kind} {name}\n{sql.strip()};\n\n" for kind, name, sql in rows)


def test_schema_contract(history):
    # The whole schema is the analysts' contract: a change to it is a change to this file
    # (regenerate: open a fresh database and write schema_of(path) to tests/fixtures/schema.sql).
    assert schema_of(history) == SCHEMA.read_text(encoding="utf-8")
    assert query(history, "SELECT count(*) FROM document_tags WHERE kind = 'functions'")[0][0] > 0
    assert (
        query(history, "SELECT count(*) FROM document_timeline WHERE entry = 'change: changed'")[0][
            0
        ]
        > 0
    )


def test_supersession_wording_links_what_it_names():
    from storage.records import Snapshot
    from tracker.rules import links_of

    snapshot = Snapshot(
        "Revised SPM module CR-G-7",
        "https://www.hkma.gov.hk/x.pdf",
        "2026-01-01",
        "",
        {},
        {
            "references": ["B1/15C"],
            "supersession_mentions": [
                "This circular supersedes circular B9/29C and the 2015 version of CR-G-7."
            ],
        },
    )
    links = {(link.key, link.kind) for link in links_of(snapshot)}
    assert links == {
        ("spm:CR-G-7", "mentions"),
        ("ref:B1/15C", "mentions"),
        ("spm:CR-G-7", "supersedes"),
        ("ref:B9/29C", "supersedes"),
    }


def test_a_file_reference_is_not_one_rule(history, monkeypatch):
    """Every circular of this history prints "Our Ref.: B1/15C B9/29C" (HKMA's file
    references): `rule ref:B1/15C` says what it is and lists the records that carry it,
    instead of one timeline of unrelated circulars."""
    (carrying,) = query(
        history, "SELECT count(DISTINCT document_id) FROM links WHERE key = 'ref:B1/15C'"
    )[0]
    assert carrying > 3
    shown = CliRunner().invoke(cli, ["--db", str(history["db"]), "rule", "ref:B1/15C"])
    assert shown.exit_code == 0, shown.output
    first, *rows = shown.output.splitlines()
    assert first.startswith(f"ref:B1/15C is a file reference, not one rule: {carrying} documents")
    records = query(
        history,
        "SELECT count(DISTINCT record_id) FROM record_members WHERE document_id IN "
        "(SELECT document_id FROM links WHERE key = 'ref:B1/15C')",
    )[0][0]
    assert records > 20  # of a reference on a great many documents, the 20 holding most
    assert first.endswith(
        f"in {records} records; the 20 holding most of them. `hkma-tracker record ID` shows one:"
    )
    counts = [int(row.split()[1]) for row in rows]
    (most,) = query(
        history,
        "SELECT count(*) FROM record_members WHERE document_id IN "
        "(SELECT document_id FROM links WHERE key = 'ref:B1/15C') "
        "GROUP BY record_id ORDER BY 1 DESC LIMIT 1",
    )[0]
    assert len(rows) == 20 and counts == sorted(counts, reverse=True) and counts[0] == most
    # Of a reference on more documents than are read, those linked to it most recently.
    monkeypatch.setattr("tracker.cli.FILE_REFERENCE_READ", 3)
    first = invoke(history, "rule", "ref:B1/15C").splitlines()[0]
    assert f"{carrying} documents carry it; the 3 linked most recently are in " in first
    # A key that is one rule: its record first, then its timeline.
    module = lines(invoke(history, "rule", "IC-6", "--json"))
    (holding,) = query(
        history, "SELECT record_id FROM record_members WHERE document_id = 'brdr:spm:IC-6'"
    )[0]
    assert module[0]["type"] == "record" and module[0]["id"] == holding
