"""Delivery over real SMTP (aiosmtpd on 127.0.0.1): subscribers, outages, retries, TLS, login,
operator alerts, webhooks. The changes come from real crawls of the recorded site."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import socket
import sqlite3
import ssl
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner
from conftest import WWW_ONLY, use_day
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alerts.channels import DeliveryError, SmtpChannel, SmtpSettings
from spiders.normalize import HONG_KONG, is_loopback_host
from storage.db import open_readonly
from storage.tags import corrected_documents
from tracker.cli import cli
from tracker.config import load_config
from tracker.delivery import deliver
from tracker.exit_codes import ExitStatus
from tracker.loopback import Override, RecordedSite
from tracker.run import run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler that keeps what it accepted, or answers as told."""

    def __init__(self) -> None:
        self.messages: list = []
        self.reply: str | None = None  # e.g. "421 ..." / "451 ..."
        self.drop_after_data = False

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        self.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        if self.drop_after_data:  # the message arrived, but the client never hears so
            server.transport.close()
        return "250 OK"


@contextlib.contextmanager
def smtp_server(box, **options):
    """An aiosmtpd server for `box` on a free loopback port, for the length of a `with`."""
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


def write_config(tmp_path, site, smtp: str, extra: str = "", operator: str = "") -> object:
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[crawl]
download_delay = 0
timeout = 3
retries = 0
[sources.pages]
urls = ["https://www.hkma.gov.hk/eng/key-functions/banking/anti-money-laundering-and-counter-financing-of-terrorism/guidance-papers-circulars/"]
{WWW_ONLY}
[digest]
folder = "{(tmp_path / "digests").as_posix()}"
[mirror]
"https://www.hkma.gov.hk" = "{site.base_url}"
{smtp}
[operator]
emails = ["ops@example.com"]
unhealthy_runs = 2
{operator}

[[subscribers]]
name = "aml-team"
emails = ["aml@example.com"]
functions = ["AML/CFT"]
sources = ["pages"]

[[subscribers]]
name = "press-desk"
emails = ["press@example.com", "desk@example.com"]
products = ["Mortgages"]
{extra}
""",
        encoding="utf-8",
    )
    return load_config(path)


def smtp_table(port: int, security: str = "none", extra: str = "") -> str:
    return f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\ntimeout = 5\nfrom = "HKMA Tracker <tracker@example.com>"\n{extra}'


def digests_for(box, address):
    return [m for rcpt, m in box.messages if address in rcpt]


def query(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def test_each_subscriber_gets_one_digest_with_exactly_its_changes(site, tmp_path, db_path, mailbox):
    config = write_config(tmp_path, site, smtp_table(mailbox.port))
    run(config, db_path)
    assert mailbox.messages == []  # day 1 is the baseline: nothing mailed
    use_day(site, 2)
    report = run(config, db_path)
    assert report.exit_status == ExitStatus.OK

    (aml,) = digests_for(mailbox, "aml@example.com")
    assert aml["From"] == "HKMA Tracker <tracker@example.com>"
    assert aml.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in aml.iter_parts()] == ["text/plain", "text/html"]
    text = aml.get_body(("plain",)).get_content()
    # The four AML/CFT page events of day 2, none of the RSS ones.
    assert aml["Subject"] == "HKMA tracker: 4 changes (1 new, 2 changed, 1 removed)"
    assert "Guidance on combating high-end money laundering" in text
    assert "Tags: AML/CFT" in text and "HKMA RSS feeds" not in text
    html = aml.get_body(("html",)).get_content()
    assert "<style" not in html and "Guidance on combating high-end money laundering" in html

    (press,) = [(rcpt, m) for rcpt, m in mailbox.messages if "press@example.com" in rcpt]
    assert press[0] == ["press@example.com", "desk@example.com"]
    assert (
        press[1]["Subject"]
        == "HKMA tracker: new – Residential Mortgage Survey Results for June 2026"
    )
    # Nothing is sent twice: a run without changes sends nothing more.
    before = len(mailbox.messages)
    run(config, db_path)
    assert len(mailbox.messages) == before


@pytest.mark.parametrize("outage", ["refused", "421", "451", "dropped-after-data"])
def test_an_outage_loses_nothing_and_duplicates_nothing(site, tmp_path, db_path, mailbox, outage):
    port = free_port() if outage == "refused" else mailbox.port  # nothing listens on a fresh port
    config = write_config(tmp_path, site, smtp_table(port))
    run(config, db_path)
    use_day(site, 2)
    if outage == "421":
        mailbox.reply = "421 4.3.2 Service shutting down"
    elif outage == "451":
        mailbox.reply = "451 4.3.0 Try again later"
    elif outage == "dropped-after-data":
        mailbox.drop_after_data = True
    failed = run(config, db_path)
    assert failed.exit_status == ExitStatus.DELIVERY_FAILED
    pending = query(
        db_path, "SELECT subscriber, attempts, last_error FROM messages WHERE status = 'pending'"
    )
    assert [(s, a) for s, a, _ in pending] == [("aml-team", 1), ("press-desk", 1)]
    assert all(error for *_, error in pending)
    message_id = query(db_path, "SELECT message_id FROM messages WHERE subscriber = 'aml-team'")[0][
        0
    ]

    # The next run comes before the backoff is over: it does not hammer the server, but it
    # does not say "0" either while digests are stuck.
    mailbox.reply, mailbox.drop_after_data = None, False
    later = run(config, db_path)
    assert later.exit_status == ExitStatus.DELIVERY_FAILED
    assert query(db_path, "SELECT DISTINCT status FROM messages") == [("pending",)]

    # Once the backoff has passed (or `digest --send`), the same message goes out, once.
    fixed = write_config(tmp_path, site, smtp_table(mailbox.port))
    db = __import__("storage.db", fromlist=["open_db"]).open_db(db_path)
    report = deliver(db, fixed, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6))
    db.close()
    assert report.failed == []
    delivered = digests_for(mailbox, "aml@example.com")
    assert {m["Message-ID"] for m in delivered} == {message_id}
    if outage != "dropped-after-data":
        assert len(delivered) == 1
    else:  # the server got it before the drop: the retry is the identical message
        assert len(delivered) == 2 and delivered[0].as_bytes() == delivered[1].as_bytes()
    assert query(db_path, "SELECT DISTINCT status, attempts FROM messages") == [("sent", 2)]
    assert len(digests_for(mailbox, "press@example.com")) == (
        2 if outage == "dropped-after-data" else 1
    )
    assert query(db_path, "SELECT count(*) FROM outbox_items WHERE message IS NULL") == [(0,)]


MESSAGE = {"recipients": '["a@example.com"]', "eml": b"Subject: x\r\n\r\nbody\r\n"}


def smtp_settings(**overrides):
    """[smtp] settings for a channel under test: a login as 'tracker' with $SMTP_PW."""
    return SmtpSettings(
        **{
            "host": "127.0.0.1",
            "port": 25,
            "security": "none",
            "username": "tracker",
            "password_env": "SMTP_PW",
            "sender": "t@example.com",
            "timeout": 5,
            **overrides,
        }
    )


def test_starttls_required_but_not_offered_aborts_before_login(mailbox, monkeypatch):
    monkeypatch.setenv("SMTP_PW", "secret")
    channel = SmtpChannel(smtp_settings(port=mailbox.port, security="starttls"))
    with pytest.raises(DeliveryError, match="does not offer STARTTLS; not logging in"):
        channel.send(MESSAGE)
    assert mailbox.messages == []


def test_no_login_in_clear_to_a_remote_host():
    channel = SmtpChannel(smtp_settings(host="smtp.example.com", port=25, security="none"))
    with pytest.raises(
        DeliveryError, match=r"refusing to log in to smtp\.example\.com without TLS"
    ):
        channel.send(MESSAGE)  # refused before any connection is attempted


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_login_over_starttls_with_a_verified_certificate(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"tracker" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=ok)

    box = Mailbox()
    with smtp_server(
        box, tls_context=context, require_starttls=True, authenticator=authenticator
    ) as controller:
        settings = smtp_settings(port=controller.port, security="starttls", ca_bundle=str(cert))
        monkeypatch.setenv("SMTP_PW", "wrong")
        with pytest.raises(DeliveryError, match="answered 535"):
            SmtpChannel(settings).send(MESSAGE)
        monkeypatch.setenv("SMTP_PW", "s3cret")
        SmtpChannel(settings).send(MESSAGE)
        assert logins[-1] == (b"tracker", b"s3cret") and len(box.messages) == 1
        # Without the CA bundle the self-signed certificate is not trusted.
        with pytest.raises(DeliveryError, match="SSLCertVerificationError"):
            SmtpChannel(dataclasses.replace(settings, ca_bundle="")).send(MESSAGE)


def test_operator_hears_once_when_a_source_breaks_and_once_when_it_recovers(
    site, tmp_path, db_path, mailbox
):
    config = write_config(tmp_path, site, smtp_table(mailbox.port))
    run(config, db_path)
    page = "/eng/key-functions/banking/anti-money-laundering-and-counter-financing-of-terrorism/guidance-papers-circulars/"
    site.overrides[page] = Override(status=503)
    for _ in range(4):  # broken from the 2nd unhealthy run on; one message only
        assert run(config, db_path).exit_status == ExitStatus.SOURCE_UNHEALTHY
    site.overrides.clear()
    run(config, db_path)
    run(config, db_path)
    subjects = [m["Subject"] for rcpt, m in mailbox.messages if rcpt == ["ops@example.com"]]
    assert subjects == [
        "HKMA tracker: source pages is broken",
        "HKMA tracker: source pages recovered",
    ]
    (broken,) = [m for rcpt, m in mailbox.messages if m["Subject"].endswith("is broken")]
    assert "HTTP 503" in broken.get_content()


def test_webhook_subscribers_get_a_slack_message(site, tmp_path, db_path):
    received = []

    def hook(request):
        received.append(json.loads(request.body))
        return Override(status=200, body=b"ok", content_type="text/plain")

    with RecordedSite(tmp_path) as receiver:
        receiver.handlers["/hooks/aml"] = hook
        extra = f'\n[[subscribers]]\nname = "slack"\nwebhook = "{receiver.base_url}/hooks/aml"\nwebhook_format = "slack"\nfunctions = ["Fraud"]\n'
        config = write_config(tmp_path, site, "", extra)
        run(config, db_path)
        use_day(site, 2)
        assert run(config, db_path).exit_status == ExitStatus.OK
    (payload,) = received
    assert payload["text"].startswith("HKMA tracker:")
    assert (
        "Measures to protect bank customers from authorized payment scams (revised)"
        in payload["text"]
    )


def test_outbox_digest_and_alerts_commands(site, tmp_path, db_path):
    from click.testing import CliRunner

    from tracker.cli import cli

    dead = free_port()  # nothing listens: every send fails
    config = write_config(tmp_path, site, smtp_table(dead))
    config_path = tmp_path / "c.toml"
    base = ["--config", str(config_path), "--db", str(db_path)]
    run(config, db_path)
    use_day(site, 2)
    assert run(config, db_path).exit_status == ExitStatus.DELIVERY_FAILED

    result = CliRunner().invoke(cli, [*base, "outbox", "--json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    (message,) = [r for r in rows if r["type"] == "message" and r["subscriber"] == "aml-team"]
    assert message["subscriber"] == "aml-team" and message["attempts"] == 1
    assert "ConnectionRefusedError" in message["last_error"]

    dry = CliRunner().invoke(cli, [*base, "digest", "--dry-run", "--subscriber", "aml-team"])
    assert dry.exit_code == 0 and "== aml-team: HKMA tracker: 4 changes" in dry.stdout

    # --send ignores the backoff: it tries now, fails again, exits 4, keeps the message.
    send = CliRunner().invoke(cli, [*base, "digest", "--send"])
    assert send.exit_code == 4 and "NOT sent: digest" in send.output
    assert query(
        db_path, "SELECT DISTINCT status, attempts FROM messages WHERE kind = 'digest'"
    ) == [("pending", 2)]

    test = CliRunner().invoke(cli, [*base, "alerts", "test", "--channel", "file"])
    assert test.exit_code == 0, test.output
    assert list((tmp_path / "digests").glob("*-operator.eml"))
    # The file it names exists (an operator message has no HTML part).
    (named,) = [line.split("sent: ", 1)[1] for line in test.output.splitlines() if "sent: " in line]
    assert named.endswith(".txt") and Path(named).is_file()


def test_login_without_tls_only_to_a_loopback_relay(monkeypatch):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.login)
        return AuthResult(success=True)

    box = Mailbox()
    with smtp_server(box, authenticator=authenticator, auth_require_tls=False) as controller:
        monkeypatch.setenv("RELAY_PW", "relay-secret")
        settings = smtp_settings(
            port=controller.port, username="relay-user", password_env="RELAY_PW"
        )
        SmtpChannel(settings, is_local=is_loopback_host).send(
            {"recipients": '["a@example.com"]', "eml": b"Subject: x\r\n\r\nbody\r\n"}
        )
        assert logins == [b"relay-user"] and len(box.messages) == 1
        monkeypatch.delenv("RELAY_PW")
        with pytest.raises(DeliveryError, match=r"\$RELAY_PW is empty or not set"):
            SmtpChannel(settings, is_local=is_loopback_host).send(
                {"recipients": '["a@example.com"]', "eml": b"Subject: x\r\n\r\nb\r\n"}
            )


PASSWORD = "pässwörd-密碼"


def test_a_non_ascii_password_logs_in_as_utf8_and_never_shows_in_an_error(monkeypatch):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        ok = auth_data.password == PASSWORD.encode("utf-8")
        return AuthResult(success=ok, handled=ok)

    monkeypatch.setenv("SMTP_PW", PASSWORD)
    for excluded, works in (([], True), (["PLAIN"], False)):
        box = Mailbox()
        with smtp_server(
            box,
            authenticator=authenticator,
            auth_require_tls=False,
            auth_exclude_mechanism=excluded,
        ) as controller:
            channel = SmtpChannel(smtp_settings(port=controller.port), is_local=is_loopback_host)
            if works:
                channel.send(MESSAGE)
                assert logins == [("PLAIN", b"tracker", PASSWORD.encode("utf-8"))]
                assert len(box.messages) == 1
            else:  # only LOGIN: smtplib would raise UnicodeEncodeError quoting a character
                with pytest.raises(DeliveryError) as refused:
                    channel.send(MESSAGE)
                assert "no AUTH PLAIN" in str(refused.value)
                assert not set(str(refused.value)) & set(PASSWORD) - set("pssword-")


@pytest.mark.parametrize("unusable", ["a-file", "/proc/hkma-tracker-digests"])
def test_an_unusable_digest_folder_is_a_delivery_failure_kept_for_retry(
    site, tmp_path, db_path, unusable
):
    folder = tmp_path / unusable if unusable == "a-file" else unusable
    if unusable == "a-file":
        folder.write_text("not a folder", encoding="utf-8")
    config = write_config(tmp_path, site, "")
    config = dataclasses.replace(config, digest_folder=Path(folder))
    run(config, db_path)  # the baseline: nothing to deliver
    use_day(site, 2)
    report = run(config, db_path)
    assert report.exit_status == ExitStatus.DELIVERY_FAILED
    assert f"file: cannot write to {folder}" in report.delivery_error
    pending = query(db_path, "SELECT attempts, last_error FROM messages WHERE status = 'pending'")
    assert len(pending) == 2  # one digest per subscriber, both kept
    assert all(n == 1 and e.startswith(f"file: cannot write to {folder}: ") for n, e in pending)


def test_anything_a_channel_raises_is_a_delivery_failure(site, tmp_path, db_path, monkeypatch):
    from alerts.channels import FileChannel

    def explode(self, message):
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(FileChannel, "send", explode)
    config = write_config(tmp_path, site, "")
    run(config, db_path)
    use_day(site, 2)
    report = run(config, db_path)
    assert report.exit_status == ExitStatus.DELIVERY_FAILED
    assert query(db_path, "SELECT DISTINCT attempts, last_error FROM messages") == [
        (1, "file: RuntimeError: disk controller on fire")
    ]


AMENDED = [  # rows of the real AML/CFT page, amended one after another during the outage
    "Use of Artificial Intelligence for Monitoring of Suspicious Activities",
    "Thematic Review of Transaction Monitoring Systems and Use of Artificial Intelligence",
    "Strengthening the response to fraud and money laundering",
    "Guidance on combating high-end money laundering",
]


def amend(site, n):
    """New changes arrive: one more row title of the page is amended."""
    page = (
        site.root
        / "eng/key-functions/banking/anti-money-laundering-and-counter-financing-of-terrorism/guidance-papers-circulars/index.html"
    )
    html = page.read_text(encoding="utf-8")
    assert AMENDED[n] in html
    page.write_text(html.replace(AMENDED[n], f"{AMENDED[n]} (amended)"), encoding="utf-8")


def backoff_over(db_path, hours_failing=0):
    """As if the retry were due (and, given, as if failing had begun `hours_failing` ago)."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE messages SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
        if hours_failing:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_failing)
            conn.execute(
                "UPDATE messages SET first_failed_at = ? WHERE first_failed_at IS NOT NULL",
                [since.replace(microsecond=0).isoformat()],
            )


class Hook:
    """A loopback webhook that keeps what was posted to it."""

    def __init__(self):
        self.posts = []

    def __call__(self, request):
        self.posts.append(json.loads(request.body))
        return Override(body=b"ok", content_type="text/plain")


def test_after_an_outage_across_runs_everything_goes_out_at_the_first_chance(
    site, tmp_path, db_path
):
    port = free_port()
    box = Mailbox()
    hook = Hook()
    with RecordedSite(tmp_path) as receiver:
        receiver.handlers["/hooks/ops"] = hook
        config = write_config(
            tmp_path,
            site,
            smtp_table(port),
            operator=f'webhook = "{receiver.base_url}/hooks/ops"',
        )
        statuses = CliRunner(), ["--config", str(tmp_path / "c.toml"), "--db", str(db_path)]

        def delivery_status():
            out = statuses[0].invoke(cli, [*statuses[1], "status", "--json"]).stdout
            return [r for r in map(json.loads, out.splitlines()) if r["type"] == "delivery"]

        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        codes = [run(config, db_path).exit_status]  # day 1: the baseline, nothing to send
        controller.stop()  # the outage begins: connections refused

        use_day(site, 2)
        codes.append(run(config, db_path).exit_status)  # day 2's changes: refused
        codes.append(run(config, db_path).exit_status)  # within the backoff: not tried
        assert query(db_path, "SELECT attempts FROM messages WHERE subscriber = 'aml-team'") == [
            (1,)
        ]
        (failing,) = [d for d in delivery_status() if d["subscriber"] == "aml-team"]
        assert "ConnectionRefusedError" in failing["last_error"] and failing["failing_since"]

        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        for n, trouble in enumerate(["421 4.3.2 Shutting down", "451 4.3.0 Try later", "drop"]):
            amend(site, n)  # new changes keep arriving during the outage
            backoff_over(db_path, hours_failing=2 if n == 0 else 0)
            box.reply, box.drop_after_data = (None, True) if trouble == "drop" else (trouble, False)
            codes.append(run(config, db_path).exit_status)
        amend(site, 3)
        backoff_over(db_path)
        box.reply, box.drop_after_data = None, False
        codes.append(run(config, db_path).exit_status)  # the server is back
        controller.stop()

    assert codes == [ExitStatus.OK, *[ExitStatus.DELIVERY_FAILED] * 5, ExitStatus.OK]
    assert delivery_status() == []
    assert query(db_path, "SELECT count(*) FROM outbox_items WHERE message IS NULL") == [(0,)]
    assert query(db_path, "SELECT DISTINCT status FROM messages ORDER BY 1") == [
        ("replaced",),
        ("sent",),
    ]
    # Every change once per subscriber, in as few digests as the guarantees allow: the backlog
    # refused until the drop is one digest (rebuilt while surely never accepted), resent as it
    # was after the ambiguous drop; what came after it is one more.
    aml = digests_for(box, "aml@example.com")
    assert len(aml) == 3 and aml[0].as_bytes() == aml[1].as_bytes()
    backlog, last = (
        aml[0].get_body(("plain",)).get_content(),
        aml[2].get_body(("plain",)).get_content(),
    )
    assert all(f"{title} (amended)" in backlog for title in AMENDED[:3])
    assert f"{AMENDED[3]} (amended)" in last and AMENDED[0] not in last
    # The operator heard once that delivery was stuck (by the webhook, while mail was down)
    # and once that it recovered.
    kinds = [p["subject"] for p in hook.posts]
    assert kinds == [
        "HKMA tracker: digests are not being delivered",
        "HKMA tracker: digest delivery recovered",
    ]
    assert "aml-team: failing since" in hook.posts[0]["text"]


def test_digest_send_after_an_outage_empties_the_outbox(site, tmp_path, db_path, mailbox):
    config = write_config(tmp_path, site, smtp_table(mailbox.port))
    run(config, db_path)
    use_day(site, 2)
    mailbox.reply = "451 4.3.0 Try later"
    assert run(config, db_path).exit_status == ExitStatus.DELIVERY_FAILED
    amend(site, 0)
    assert run(config, db_path).exit_status == ExitStatus.DELIVERY_FAILED  # queued behind it
    mailbox.reply = None

    send = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "c.toml"), "--db", str(db_path), "digest", "--send"]
    )

    assert send.exit_code == 0, send.output
    assert query(db_path, "SELECT count(*) FROM outbox_items WHERE message IS NULL") == [(0,)]
    assert query(db_path, "SELECT count(*) FROM messages WHERE status = 'pending'") == [(0,)]
    (aml,) = digests_for(mailbox, "aml@example.com")  # one digest: rebuilt, never accepted
    assert f"{AMENDED[0]} (amended)" in aml.get_body(("plain",)).get_content()


def test_retries_come_at_the_next_run_and_never_more_than_an_hour_apart(tmp_path):
    from storage.db import open_db, write_transaction
    from storage.outbox import mark_failed, store_message

    db = open_db(tmp_path / "h.db")
    now = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)
    with write_transaction(db):
        message = store_message(
            db,
            kind="digest",
            subscriber="aml-team",
            channel="smtp",
            message_id="<m@x>",
            subject="s",
            recipients=["a@example.com"],
            eml=b"x",
            payload={},
        )
    waits = []
    for _ in range(7):
        with write_transaction(db):
            mark_failed(db, message, "451", now)
        (due,) = db.execute("SELECT next_attempt_at FROM messages").fetchone()
        waits.append(int((dt.datetime.fromisoformat(due) - now).total_seconds() // 60))
    assert waits == [5, 10, 20, 40, 50, 50, 50]
    assert db.execute("SELECT first_failed_at FROM messages").fetchone()[0] == now.isoformat()


def add_feed_item(site, feed: str, title: str, link: str) -> None:
    """One more item at the top of a served feed (a real title, a day-2 variant)."""
    path = site.root / "eng/other-information/rss" / f"rss_{feed}.xml"
    item = (
        f"<item><title>{title}</title><link>{link}</link>"
        "<pubDate>Thu, 30 Jul 2026 00:00:00 +0800</pubDate><description /></item>"
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("<item>", item + "<item>", 1), encoding="utf-8")


# Real titles no rule tags with a function (tests/labelled/untouched.toml, second.toml).
UNTAGGED_CIRCULAR = "Launch of Banking Regulatory Document Repository (BRDR)"
UNTAGGED_LINK = (
    "https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/2025/"
    "20250331e1.pdf"
)
UNTAGGED_SPEECH = "Speech at The Hong Kong Management Association 2010 HKMA Quality Award Dinner"
CYBER_SUBSCRIBERS = """
[[subscribers]]
name = "cyber"
emails = ["cyber@example.com"]
functions = ["Cybersecurity"]

[[subscribers]]
name = "cyber-strict"
emails = ["strict@example.com"]
functions = ["cyber"]
untagged = "exclude"
"""


def test_a_filtered_subscriber_gets_the_circular_no_rule_tags_and_not_the_speech(
    site, tmp_path, db_path, mailbox
):
    config = write_config(tmp_path, site, smtp_table(mailbox.port), CYBER_SUBSCRIBERS)
    run(config, db_path)
    use_day(site, 2)
    add_feed_item(site, "circulars", UNTAGGED_CIRCULAR, UNTAGGED_LINK)
    add_feed_item(
        site,
        "speeches",
        UNTAGGED_SPEECH,
        "https://www.hkma.gov.hk/eng/news-and-media/speeches/2010/11/20101126-1/",
    )
    assert run(config, db_path).exit_status == ExitStatus.OK

    (cyber,) = digests_for(mailbox, "cyber@example.com")
    text = cyber.get_body(("plain",)).get_content()
    tagged, untagged = text.split("== Not tagged for your filters: may concern you ==")
    assert "Joint Circular on the Cross-Sectoral Cyber Mapping Exercise" in tagged
    assert UNTAGGED_CIRCULAR not in tagged
    assert UNTAGGED_CIRCULAR in untagged
    assert "No function tag: no rule matched its title" in untagged
    assert UNTAGGED_SPEECH not in text  # news follows the filter as before
    assert "Not tagged for your filters: 1 binding instrument the rules could not tag" in text
    assert "and binding instruments the rules could not tag" in text  # whose digest, in words
    html = cyber.get_body(("html",)).get_content()
    assert "Not tagged for your filters: may concern you" in html and UNTAGGED_CIRCULAR in html

    (strict,) = digests_for(mailbox, "strict@example.com")
    text = strict.get_body(("plain",)).get_content()
    assert "Cross-Sectoral Cyber Mapping" in text
    assert UNTAGGED_CIRCULAR not in text and "Not tagged" not in text

    routes = dict(
        query(
            db_path,
            "SELECT o.subscriber, json_extract(o.route, '$.via') FROM outbox_items o "
            "JOIN changes c ON c.id = o.change_id WHERE c.title = ?",
            [UNTAGGED_CIRCULAR],
        )
    )
    assert routes == {"cyber": "untagged"}

    # Why did (or didn't) each subscriber get it?
    cli_args = ["--config", str(tmp_path / "c.toml"), "--db", str(db_path)]

    def route(title):
        (change,) = query(
            db_path, "SELECT id FROM changes WHERE title = ? AND NOT baseline", [title]
        )
        result = CliRunner().invoke(cli, [*cli_args, "route", str(change[0]), "--json"])
        assert result.exit_code == 0, result.output
        return {a["subscriber"]: a for a in map(json.loads, result.output.splitlines())}

    untagged = route(UNTAGGED_CIRCULAR)
    assert untagged["cyber"]["via"] == "untagged" and untagged["cyber"]["queued"]["message"]
    assert untagged["cyber"]["why"] == "No function tag: no rule matched its title"
    assert not untagged["cyber-strict"]["would_go"] and "queued" not in untagged["cyber-strict"]
    assert untagged["cyber-strict"]["why"] == (
        "The functions filter wants Cybersecurity; the change has no tag of this kind"
    )
    matched = route("Joint Circular on the Cross-Sectoral Cyber Mapping Exercise")
    assert matched["cyber"]["via"] == "filters"
    assert matched["cyber"]["matched"] == {"functions": ["Cybersecurity"]}
    assert matched["cyber"]["evidence"] == {
        "functions: Cybersecurity": ["strong 'cyber' in the title"]
    }
    assert matched["aml-team"]["why"].startswith("The functions filter wants AML/CFT; the change")
    text = CliRunner().invoke(cli, [*cli_args, "route", "1", "--subscriber", "nobody"])
    assert text.exit_code == 2 and "no subscriber 'nobody'" in text.output

    # Operators and auditors see them counted, whatever a filter would show.
    status = CliRunner().invoke(cli, [*cli_args, "status"])
    assert "binding instruments without a function tag: 1 changes in the last 30 days" in (
        status.output
    )
    today = dt.datetime.now(HONG_KONG).date()  # the report's days are Hong Kong days
    report = CliRunner().invoke(
        cli,
        [
            *cli_args,
            "report",
            "--from",
            today.isoformat(),
            "--to",
            today.isoformat(),
            "--function",
            "Cybersecurity",
            "--format",
            "json",
        ],
    )
    data = json.loads(report.output)
    assert data["totals"]["untagged"] == 1
    assert [c["title"] for c in data["untagged"]] == [UNTAGGED_CIRCULAR]
    assert UNTAGGED_CIRCULAR not in [c["title"] for c in data["changes"]]


@contextlib.contextmanager
def held_for_writing(db_path, seconds):
    """A run's write transaction on `db_path`, held for `seconds` from another thread while
    the block runs."""
    import threading

    held = threading.Event()

    def hold():
        conn = sqlite3.connect(db_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    writer = threading.Thread(target=hold)
    writer.start()
    held.wait(5)
    try:
        yield
    finally:
        writer.join()


def test_an_officers_tag_routes_the_change_once_and_holds_across_retag_and_versions(
    site, tmp_path, db_path, mailbox, monkeypatch
):
    subscribers = """
[[subscribers]]
name = "everyone"
emails = ["all@example.com"]

[[subscribers]]
name = "aml"
emails = ["aml-only@example.com"]
functions = ["AML/CFT"]
untagged = "exclude"
"""
    config = write_config(tmp_path, site, smtp_table(mailbox.port), subscribers)
    cli_args = ["--config", str(tmp_path / "c.toml"), "--db", str(db_path)]

    def hkma(*args):
        return CliRunner().invoke(cli, [*cli_args, *args])

    run(config, db_path)
    use_day(site, 2)
    add_feed_item(site, "circulars", UNTAGGED_CIRCULAR, UNTAGGED_LINK)
    run(config, db_path)
    assert (
        UNTAGGED_CIRCULAR
        in digests_for(mailbox, "all@example.com")[0].get_body(("plain",)).get_content()
    )
    assert not any(
        UNTAGGED_CIRCULAR in m.get_body(("plain",)).get_content()
        for m in digests_for(mailbox, "aml-only@example.com")
    )
    (document,) = query(db_path, "SELECT id FROM documents WHERE title = ?", [UNTAGGED_CIRCULAR])[0]

    unknown = hkma("tag", "set", document, "--add", "Money stuff", "--by", "J. Chan")
    assert unknown.exit_code == 2
    assert "'Money stuff' is not one of the known names" in unknown.output
    assert "AML/CFT" in unknown.output  # it names the known ones
    ambiguous = hkma("tag", "set", document, "--add", "bank", "--by", "J. Chan")
    assert ambiguous.exit_code == 2 and "products:bank or entity_types:bank" in ambiguous.output

    added = hkma("tag", "set", document, "--add", "aml", "--by", "J. Chan", "--note", "KYC")
    assert added.exit_code == 0, added.output
    assert "queued for the next digest of: aml" in added.output
    # Given while a run holds the database longer than the busy timeout: it waits its turn.
    monkeypatch.setattr("storage.db.BUSY_TIMEOUT_MS", 200)
    with held_for_writing(db_path, seconds=2):
        again = hkma("tag", "set", document, "--add", "AML/CFT", "--by", "J. Chan")
    assert again.exit_code == 0, again.output
    assert "no subscriber newly matches" in again.output
    monkeypatch.undo()
    waiting = [json.loads(line) for line in hkma("outbox", "--json").output.splitlines()]
    (queued,) = [w for w in waiting if w["type"] == "queued_change"]
    assert (queued["subscriber"], queued["route"]["via"]) == ("aml", "correction")
    assert queued["route"]["correction"]["by"] == "J. Chan"

    before = len(mailbox.messages)
    sent = hkma("digest", "--send")
    assert sent.exit_code == 0, sent.output
    (aml,) = [m for rcpt, m in mailbox.messages[before:] if "aml-only@example.com" in rcpt]
    assert len(mailbox.messages) == before + 1  # once, and to no one else
    text = aml.get_body(("plain",)).get_content()
    assert UNTAGGED_CIRCULAR in text
    today = dt.datetime.now(HONG_KONG).date().isoformat()  # dates are shown in HKT
    assert f"Tagged AML/CFT by J. Chan on {today}" in text

    # Why did aml get it, and why did it not before?
    (change,) = query(
        db_path,
        "SELECT id FROM changes WHERE document_id = ? AND NOT baseline ORDER BY id DESC",
        [document],
    )[0:1]
    routed = hkma("route", str(change[0]), "--json")
    answers = {a["subscriber"]: a for a in map(json.loads, routed.output.splitlines())}
    assert answers["aml"]["queued"]["route"]["via"] == "correction"
    # The newest correction of a tag is the one in force (the second, without a note).
    assert answers["aml"]["evidence"] == {"functions: AML/CFT": [f"set by J. Chan on {today}"]}
    assert answers["everyone"]["via"] == "everything"
    text_route = hkma("route", str(change[0]), "--subscriber", "aml").output
    assert "after a tag correction" in text_route and "set by J. Chan" in text_route
    listed = hkma("changes", "--json", "--include-baseline", "--limit", "20").stdout
    (event,) = [e for e in map(json.loads, listed.splitlines()) if e["id"] == change[0]]
    assert event["tags_set_by"] == [f"AML/CFT (by J. Chan, {today})"]  # as export says it

    # A tag the rules gave, removed by an officer.
    (cyber,) = query(db_path, "SELECT id FROM documents WHERE title LIKE 'Joint Circular on%'")[0]
    removed = hkma("tag", "set", cyber, "--remove", "Cybersecurity", "--by", "A. Lee")
    assert removed.exit_code == 0, removed.output

    # Corrections hold across retag and a new version of the document.
    assert hkma("retag").exit_code == 0
    path = site.root / "eng/other-information/rss/rss_circulars.xml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(UNTAGGED_CIRCULAR, UNTAGGED_CIRCULAR + " (Revised)"), "utf-8")
    run(config, db_path)

    def tags_of(doc):
        return json.loads(
            query(db_path, "SELECT functions FROM documents WHERE id = ?", [doc])[0][0]
        )

    assert "AML/CFT" in tags_of(document)
    assert "Cybersecurity" not in tags_of(cyber)
    assert query(
        db_path, "SELECT set_by FROM document_tags WHERE document_id = ? AND tag = 'AML/CFT'",
        [document],
    ) == [("J. Chan",)]  # fmt: skip
    revised = digests_for(mailbox, "aml-only@example.com")[-1].get_body(("plain",)).get_content()
    assert UNTAGGED_CIRCULAR + " (Revised)" in revised  # the new version routes by the tag
    assert f"Tagged AML/CFT by J. Chan on {today}" in revised
    to_all = digests_for(mailbox, "all@example.com")[-1].get_body(("plain",)).get_content()
    assert f"Tagged AML/CFT by J. Chan on {today}" in to_all  # whoever reads it
    shown = hkma("history", cyber).output
    assert f"removed by a person: Cybersecurity (A. Lee, {today})" in shown

    log = hkma("tag", "log", document)
    assert "J. Chan added function AML/CFT: KYC" in log.output
    corrections = hkma("tag", "corrections", "--json")
    assert [json.loads(line)["action"] for line in corrections.output.splitlines()] == [
        "add", "add", "remove",
    ]  # fmt: skip
    for statement in ("UPDATE tag_corrections SET by = 'x'", "DELETE FROM tag_corrections"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            query(db_path, statement)

    # The corrected documents are labelled data for bench/tagging.py --db.
    labelled = {i["title"]: i for i in corrected_documents(open_readonly(db_path))}
    assert set(labelled) == {
        UNTAGGED_CIRCULAR + " (Revised)",
        "Joint Circular on the Cross-Sectoral Cyber Mapping Exercise",
    }
    assert "AML/CFT" in labelled[UNTAGGED_CIRCULAR + " (Revised)"]["functions"]
    assert labelled[UNTAGGED_CIRCULAR + " (Revised)"]["feed"] == "circulars"


def test_a_digest_that_cannot_be_built_is_shown_and_the_operator_told_once(
    site, tmp_path, db_path, mailbox, monkeypatch
):
    import tracker.delivery as delivery

    # Stuck at once: a digest that cannot be built is a delivery failure like any other.
    stuck = "delivery_stuck_after = 0"
    config = write_config(tmp_path, site, smtp_table(mailbox.port), operator=stuck)
    run(config, db_path)
    use_day(site, 2)
    real = delivery.Digest.of_changes

    def broken(*args, **kwargs):
        raise ValueError("Content line can not contain unescaped new line characters.")

    monkeypatch.setattr(delivery.Digest, "of_changes", broken)
    assert run(config, db_path).exit_status == ExitStatus.DELIVERY_FAILED
    assert run(config, db_path).exit_status == ExitStatus.DELIVERY_FAILED  # tried each run
    told = [m for rcpt, m in mailbox.messages if "ops@example.com" in rcpt]
    assert [m["Subject"] for m in told] == [
        "HKMA tracker: the digest for aml-team cannot be built",
        "HKMA tracker: the digest for press-desk cannot be built",
        "HKMA tracker: digests are not being delivered",
    ]  # once each, not every run
    stuck_body = told[-1].get_content()
    assert "- aml-team: failing since" in stuck_body and "not built" in stuck_body
    base = ["--config", str(tmp_path / "c.toml"), "--db", str(db_path)]
    status = CliRunner().invoke(cli, [*base, "status"]).output
    assert "digest for aml-team cannot be built since" in status
    assert "unescaped new line characters" in status

    monkeypatch.setattr(delivery.Digest, "of_changes", real)
    assert run(config, db_path).exit_status == ExitStatus.OK  # its changes were kept queued
    assert digests_for(mailbox, "aml@example.com")
    assert "cannot be built" not in CliRunner().invoke(cli, [*base, "status"]).output
    told = [m["Subject"] for rcpt, m in mailbox.messages if "ops@example.com" in rcpt]
    assert told[-1] == "HKMA tracker: digest delivery recovered"


@contextlib.contextmanager
def tarpit(trickle: bytes = b""):
    """A server (SMTP or HTTP) that accepts and then never answers (or answers `trickle`, a
    byte a second): on a free loopback port, for the length of a `with`."""
    import threading
    import time as clock

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held, stop = [], threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            for byte in trickle:
                if stop.is_set():
                    break
                conn.sendall(bytes([byte]))
                clock.sleep(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def smtp_to(port):
    return smtp_table(port).replace("timeout = 5", "timeout = 120")


def webhook_to(port):  # the mail channel unused (digests to files), one webhook subscriber
    return (
        '[smtp]\ntimeout = 120\n[[subscribers]]\nname = "hook"\n'
        f'webhook = "http://127.0.0.1:{port}/hooks/aml"\n'
    )


@pytest.mark.parametrize(
    "channel, trickle",
    [
        (smtp_to, b""),
        (smtp_to, b"220 " + b"x" * 200),
        (webhook_to, b""),  # answers after 10 minutes, or never
        (webhook_to, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 200),
    ],
    ids=["smtp mute", "smtp trickling", "webhook mute", "webhook trickling"],
)
def test_the_run_deadline_covers_delivery(site, tmp_path, db_path, channel, trickle):
    import time as clock

    with tarpit(trickle) as port:
        config = write_config(tmp_path, site, channel(port))
        run(config, db_path, alerts=False)
        use_day(site, 2)
        began = clock.monotonic()
        report = run(config, db_path, deadline=8)
        took = clock.monotonic() - began
    assert report.exit_status == ExitStatus.DELIVERY_FAILED
    assert took < 16, took  # the deadline, not the server's 120 s timeout or its trickle
    pending = query(db_path, "SELECT count(*) FROM messages WHERE status = 'pending'")
    assert pending[0][0] >= 1  # kept for the next run
