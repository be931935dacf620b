"""The tagger on real HKMA titles (clear-cut cases), its weighting and its evidence."""

from __future__ import annotations

import pytest

from tracker.tagging import Taggable, TaxonomyError, load_taxonomy, tag

TAXONOMY = load_taxonomy()
AML_PAGE = (
    "https://www.hkma.gov.hk/eng/key-functions/banking/anti-money-laundering-and-counter-"
    "financing-of-terrorism/guidance-papers-circulars/"
)


def names(doc: Taggable) -> dict[str, set[str]]:
    return {kind: set(found) for kind, found in tag(doc, TAXONOMY).items()}


@pytest.mark.parametrize(
    ("title", "feed", "functions", "products"),
    [
        (
            "Statements issued by the Financial Action Task Force",
            "circulars",
            {"AML/CFT"},
            {"Banking"},
        ),
        ("Bogus Telephone Calls", "circulars", {"Fraud"}, {"Banking"}),
        ("Commencement of Basel III final reform package", "circulars", {"Capital"}, {"Banking"}),
        (
            "Prudential Measures for Property Mortgage Loans",
            "circulars",
            {"Credit", "Risk"},
            {"Mortgages", "Banking"},
        ),
        (
            "Generative Artificial Intelligence Sandbox",
            "circulars",
            {"Technology"},
            {"AI", "Banking"},
        ),
        (
            "Guidance on Selling of Accumulators",
            "circulars",
            {"Consumer Protection"},
            {"Wealth Mgt", "Securities", "Banking"},
        ),
        (
            "Hong Kong Taxonomy for Sustainable Finance (Phase 2A)",
            "circulars",
            {"Environment"},
            {"Banking"},
        ),
        (
            "Relevant Stablecoin-related Activities",
            "circulars",
            set(),
            {"Stablecoins/Virtual Assets", "Banking"},
        ),
        (
            "Residential Mortgage Survey Results for May 2026",
            "press-release",
            {"Financial"},
            {"Mortgages"},
        ),
        (
            "Tender of 2-Year Exchange Fund Notes to be held on 20 February 2026",
            "press-release",
            {"Financial"},
            {"Securities"},
        ),
        ("Exchange Fund Position at end-June 2026", "press-release", {"Financial"}, set()),
    ],
)
def test_clear_cut_real_titles(title, feed, functions, products):
    tags = names(Taggable(title, source="rss", extra={"feed": feed}))
    assert tags["functions"] == functions
    assert tags["products"] == products


def test_one_passing_mention_in_a_long_text_does_not_tag():
    text = "The Monetary Authority reviewed its statistics. " * 50
    once = names(Taggable("Annual review", text + "It also noted money laundering risks."))
    assert "AML/CFT" not in once["functions"]
    thrice = names(Taggable("Annual review", text + "Money laundering. " * 3))
    assert "AML/CFT" in thrice["functions"]


def test_evidence_says_which_rule_matched_where():
    found = tag(Taggable("Guidance on combating high-end money laundering"), TAXONOMY)
    assert found["functions"]["AML/CFT"] == [
        {"rule": "strong 'money laundering'", "where": "title", "weight": 3.0}
    ]


def test_a_row_of_the_aml_page_inherits_the_page_topic():
    row = Taggable(
        "Strengthening Information and Intelligence Sharing",
        source="pages",
        extra={"kind": "listed-document", "page": AML_PAGE},
    )
    evidence = tag(row, TAXONOMY)["functions"]["AML/CFT"]
    assert evidence[0]["rule"].startswith("listed on topic page anti-money-laundering")


def test_metadata_spm_codes_and_addressees():
    module = Taggable("Stress-testing", source="brdr", extra={"spm_code": "IC-5"})
    assert "Risk" in names(module)["functions"]
    letter = Taggable(
        "Circular", document={"text": "", "addressees": ["All stored value facility licensees"]}
    )
    assert names(letter)["entity_types"] == {"SVF licensees"}


def test_chinese_titles_are_tagged():
    tags = names(Taggable("打擊洗錢及恐怖分子資金籌集指引"))
    assert tags["functions"] == {"AML/CFT"}


def test_taxonomy_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('version = "x"\n[functions.Fraud]\nstrng = ["fraud"]\n', encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"t\.toml: functions\.'Fraud': unknown key 'strng'"):
        load_taxonomy(bad)
    bad.write_text('[functions.Fraud]\npatterns = ["(unclosed"]\n', encoding="utf-8")
    with pytest.raises(TaxonomyError, match="bad pattern"):
        load_taxonomy(bad)
    bad.write_text(
        '[functions.Fraud]\naliases = ["scams"]\n[functions.Scams]\nstrong = ["scam"]\n',
        encoding="utf-8",
    )
    with pytest.raises(TaxonomyError, match="functions: 'Scams' names both 'Fraud' and 'Scams'"):
        load_taxonomy(bad)
    # In a double-quoted TOML string \b is a backspace: the pattern would never match.
    for table in ('[functions.Fraud]\npatterns = ["\\bscam\\b"]\n', 'not_subject = ["\\bHKMA"]\n'):
        bad.write_text(table, encoding="utf-8")
        with pytest.raises(TaxonomyError, match=r"control character.*single quotes"):
            load_taxonomy(bad)


def test_the_shipped_patterns_match_what_they_are_written_for():
    found = names(Taggable("IRRBB: revised SPM module"))["functions"]
    assert "Risk" in found, found
    found = names(Taggable("HKMA's Response to US Fed's Interest Rate Decision"))["functions"]
    assert "Financial" in found, found


def test_the_taxonomy_is_read_once_while_its_file_stays_the_same(tmp_path):
    from tracker.tagging import DEFAULT_TAXONOMY

    copy = tmp_path / "taxonomy.toml"
    copy.write_text(DEFAULT_TAXONOMY.read_text(encoding="utf-8"), encoding="utf-8")
    first = load_taxonomy(copy)
    assert load_taxonomy(copy) is first
    copy.write_text(
        copy.read_text(encoding="utf-8").replace('version = "', 'version = "edited-', 1),
        encoding="utf-8",
    )
    assert load_taxonomy(copy).version.startswith("edited-")


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("spm:IC-6", "spm:IC-6"),
        ("IC-6", "spm:IC-6"),
        ("CR-G-7", "spm:CR-G-7"),
        ("B1/15C", "ref:B1/15C"),
        ("20250428-3", "brdr:20250428-3"),
        ("20250428-3-EN", "brdr:20250428-3"),
    ],
)
def test_rule_keys_as_people_write_them(written, key):
    from tracker.rules import rule_key

    assert rule_key(written) == key


def test_a_rule_key_in_no_known_form_is_refused():
    from tracker.rules import UnknownKey, rule_key

    with pytest.raises(UnknownKey, match="'nonsense' is not an SPM module"):
        rule_key("nonsense")


# Real titles of HKMA's feeds and topic pages (../shared/hkma-samples) that tagged wrongly:
# the organisation's name, a speaker's byline, a UN resolution, a market-operations title.
@pytest.mark.parametrize(
    ("title", "must", "must_not"),
    [
        (
            "Keynote Speech at International Symposium on Digital Fraud Prevention and Detection "
            "by Raymond Chan, Executive Director (Enforcement and AML), Hong Kong Monetary "
            "Authority",
            {"Fraud"},
            {"AML/CFT", "Legal"},  # (a symposium is Financial by the taxonomy's events rule)
        ),
        (
            "United Nations Security Council Resolution concerning the Democratic People’s "
            "Republic of Korea and Combating Financing of Weapons of Mass Destruction Activities",
            {"AML/CFT"},
            {"Resolution"},
        ),
        (
            "New Measures to Support the Development of Hong Kong’s Fixed Income and Currency "
            "Market and Offshore RMB Business",
            {"Financial"},
            set(),
        ),
        ("Exchange Fund Bills and Notes tender results", {"Financial"}, set()),
        ("HKMA announces appointment of Deputy Chief Executive", set(), {"Financial"}),
    ],
)
def test_names_and_bylines_are_not_subjects(title, must, must_not):
    functions = set(tag(Taggable(title, ""), load_taxonomy())["functions"])
    assert must <= functions and not (must_not & functions), functions


# Untouched titles that tagged wrongly (tests/labelled/untouched2.toml): a central bank's name
# is no banking matter, a debt capital market no bank capital, debt relief no securities.
@pytest.mark.parametrize(
    ("title", "must", "must_not"),
    [
        (
            "Result of the tenders of the People's Bank of China RMB Bills held on 25 August 2025",
            {"Financial", "Securities"},
            {"Banking"},
        ),
        (
            "Bank Indonesia, Hong Kong Monetary Authority and People’s Bank of China sign MoU to "
            "promote bilateral transactions in local currencies",
            set(),
            {"Banking"},
        ),
        (
            "Keynote speech at the ICMA China Debt Capital Market Annual Forum",
            {"Financial", "Securities"},
            {"Capital"},
        ),
        (
            "Interbank Debt Relief Plan",
            {"Credit", "Consumer Protection", "Banking"},
            {"Securities"},
        ),
        (
            "Chapter IV of Supplementary Guidance on the Revised Credit Risk Framework",
            {"Capital", "Credit"},
            {"Risk"},
        ),
        # tests/labelled/untouched4.toml: a tax act's name is no governance matter, the Basel
        # Committee's name no capital one.
        ("Foreign Account Tax Compliance Act in the US", {"AML/CFT", "Legal"}, {"Governance"}),
        (
            "Basel Committee on Banking Supervision revised the “General guide to account opening”",
            {"AML/CFT"},
            {"Capital"},
        ),
    ],
)
def test_organisations_and_markets_are_not_the_subject_they_sound_like(title, must, must_not):
    tags = tag(Taggable(title, ""), load_taxonomy())
    found = set(tags["functions"]) | set(tags["products"])
    assert must <= found and not (must_not & found), found


@pytest.mark.parametrize(
    ("topic", "function"),
    [
        ("AML & CFT", "AML/CFT"),
        ("Financial Sanctions", "AML/CFT"),
        ("AML & CFT - Financial Sanctions", "AML/CFT"),  # if BRDR joins topic and subtopic
        ("Green & Sustainable Banking", "Environment"),
        ("Fintech: Regtech", "Technology"),
        ("Capital Adequacy", "Capital"),
    ],
)
def test_brdr_topics_are_evidence(topic, function):
    doc = Taggable("Circular", "", "brdr", extra={"topics": [topic]})
    tags = tag(doc, load_taxonomy())
    assert function in tags["functions"], tags
    assert tags["functions"][function][0]["where"] == "metadata"


def test_a_generic_subtopic_alone_is_no_evidence():
    doc = Taggable("Circular", "", "brdr", extra={"topics": ["Others"]})
    assert tag(doc, load_taxonomy())["functions"] == {}


# Subjects, not title words (issue 21, tests/labelled/second.toml): what each subject is,
# whatever words a title of any decade uses for it.
@pytest.mark.parametrize(
    ("title", "must", "must_not"),
    [
        ("Strengthening Security Controls for Internet Banking Services", {"Cybersecurity"}, set()),
        (
            "Implementation of two-factor authentication for online banking",
            {"Cybersecurity"},
            set(),
        ),
        ("Precautionary Measures against Fake E-mails or websites", {"Fraud"}, set()),
        ("Online Behavioural Tracking", {"Privacy", "Technology"}, set()),
        (
            "Outsourcing of Data Processing Operations",
            {"Operational Resilience", "Technology"},
            set(),
        ),
        ("Capacity planning for Internet banking", {"Operational Resilience", "Technology"}, set()),
        ("New Share Subscription and Share Margin Financing", {"Credit", "Securities"}, set()),
        ("Country Debt Provisioning", {"Credit"}, set()),
        ("CR-G-9 Exposures to Connected Parties", {"Credit", "Risk"}, set()),
        ("IC-2 Internal Audit Function", {"Governance"}, {"Risk"}),
        ("SPM IC-4: Complaint Handling Procedures", {"Consumer Protection"}, {"Risk"}),
        ("International Capital Flows and Free Markets", {"Financial"}, {"Capital"}),
        # A reform package of the capital rules is not law reform; a provision is not provisioning.
        ("Commencement of Basel III final reform package", {"Capital"}, {"Legal"}),
        ("Provision of Staking Services for Virtual Assets", set(), {"Credit"}),
    ],
)
def test_rules_follow_subjects(title, must, must_not):
    tags = tag(Taggable(title, "", "brdr", extra={"doc_type": "CIR"}), load_taxonomy())
    found = set(tags["functions"]) | set(tags["products"])
    assert must <= found and not (must_not & found), found


CIRCULAR_TEXT = (  # as stored: flattened
    "Our Ref.: B1/15C 12 December 2025 The Chief Executive All authorized institutions "
    "Dear Sir / Madam, Strengthening Security Controls for Automatic Teller Machines "
    "I am writing to set out the enhanced controls expected of authorized institutions."
)


def test_a_circulars_subject_line_tags_as_its_title_does():
    doc = Taggable("Circular", document={"text": CIRCULAR_TEXT})
    found = tag(doc, load_taxonomy())
    assert found["functions"]["Cybersecurity"] == [
        {"rule": "strong 'security controls'", "where": "subject line", "weight": 3.0}
    ]
    # Without a heading before the first sentence there is no subject line, and one mention
    # in the text is not enough.
    plain = (
        "Our Ref.: B1/15C The Chief Executive All authorized institutions Dear Sir / Madam, "
        "I am writing about the security controls of automatic teller machines."
    )
    found = tag(Taggable("Circular", document={"text": plain}), load_taxonomy())
    assert "Cybersecurity" not in found["functions"]


def test_the_tag_command_reads_a_text_file_as_a_stored_documents_text(tmp_path):
    import json

    from click.testing import CliRunner

    from tracker.cli import cli

    text = tmp_path / "circular.txt"
    text.write_text(
        "Our Ref.: B1/15C\nAll restricted licence banks\nDear Sir / Madam,\n"
        "Revised arrangements\nI am writing to set out the revised arrangements.\n"
        "Please read it with SPM module CR-G-7.\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        cli, ["tag", "--title", "Circular", "--text-file", str(text), "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    # The fields a stored document's text yields: its SPM modules and its addressees.
    assert {"rule": "SPM module CR-G-7", "where": "metadata", "weight": 3.0} in found["functions"][
        "Credit"
    ]
    assert "Restricted licence banks" in found["entity_types"]
    bare = CliRunner().invoke(cli, ["tag"])
    assert bare.exit_code == 2 and "give --title" in bare.output


def test_a_feed_named_alike_by_another_regulator_is_not_the_hkmas():
    """HKMA's circulars feed is addressed to authorized institutions (Banking, Banks); the
    IA's and the SFC's circulars, guidelines and consultations are not, though their listings
    carry the same feed names. Each regulator's own field is what its publications concern:
    an Insurance subscriber must not lose an IA circular to a Banking tag it was given by a
    feed's name (a change tagged with something else is filtered out, not flagged untagged)."""
    ia = names(
        Taggable(
            "Circular on Cybersecurity of Authorized Insurers",
            source="ia",
            extra={"feed": "circulars"},
            document={"text": "", "addressees": ["All authorized insurers"]},
        )
    )
    assert ia["products"] == {"Insurance"}
    assert ia["entity_types"] == {"Insurers"}
    assert ia["functions"] == {"Cybersecurity"}
    guideline = names(
        Taggable(
            "GL3: Guideline on Anti-Money Laundering", source="ia", extra={"feed": "guidelines"}
        )
    )
    assert guideline["products"] == {"Insurance"}
    assert not guideline["entity_types"]
    sfc = names(
        Taggable(
            "Circular to licensed corporations on cybersecurity",
            source="sfc",
            extra={"feed": "circulars"},
        )
    )
    assert sfc["products"] == {"Securities"}
    assert sfc["entity_types"] == {"Licensed corporations"}
    # Registered institutions are banks (authorized institutions registered with the SFC).
    to_banks = names(
        Taggable(
            "Circular to licensed corporations and registered institutions on the use of "
            "generative artificial intelligence language models",
            source="sfc",
            extra={"feed": "consultations"},
        )
    )
    assert to_banks["products"] == {"Securities", "AI", "Banking"}
    assert "Banks (authorized institutions)" not in to_banks["entity_types"]
    # HKMA's own circulars feed is as it was.
    hkma = names(Taggable("Bogus Telephone Calls", source="rss", extra={"feed": "circulars"}))
    assert hkma["products"] == {"Banking"}
    assert hkma["entity_types"] == {"Banks (authorized institutions)"}
