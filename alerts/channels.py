"""Channels send a stored message somewhere. Adding a channel is adding one subclass of Channel.

A channel gets the message exactly as it was first built (its bytes and Message-ID, or its
JSON payload) and raises DeliveryError if the other side did not take it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit


class DeliveryError(Exception):
    """The message was not (or not surely) delivered: it stays pending and is retried.

    `maybe_delivered`: the failure came after the other side may have taken the message (a
    connection dropped after the body was sent). Such a message is only ever resent as it is,
    so that a receiver can tell the copy by its Message-ID; one surely refused may be rebuilt.
    """

    def __init__(self, message: str, maybe_delivered: bool = False) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


class Channel(ABC):
    name: ClassVar[str]

    @abstractmethod
    def send(self, message: dict[str, Any]) -> str:
        """Send a stored message (a `messages` row); return where it went."""


class FileChannel(Channel):
    """Writes `<id>-<subscriber>.eml`, `.html` and `.txt` into a folder (no SMTP configured)."""

    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: dict[str, Any]) -> str:
        try:
            return self._write(message)
        except OSError as error:  # a full disk, a folder that is a file, no permission
            why = error.strerror or type(error).__name__
            raise DeliveryError(f"file: cannot write to {self.folder}: {why}") from None

    def _write(self, message: dict[str, Any]) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{message['created_at'][:10]}-{message['id']:06d}-{message['subscriber']}"
        parsed = message_from_bytes(message["eml"], policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        outputs = {".eml": bytes(message["eml"])}
        for suffix, subtype in ((".txt", "plain"), (".html", "html")):
            part = parsed.get_body((subtype,))
            if part is not None:
                outputs[suffix] = str(part.get_content()).encode("utf-8")
        for suffix, data in outputs.items():
            path = self.folder / f"{stem}{suffix}"
            tmp = path.with_suffix(suffix + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        # What a reader opens: the HTML where there is one (digests), else the text.
        shown = next(s for s in (".html", ".txt", ".eml") if s in outputs)
        return str(self.folder / f"{stem}{shown}")


@dataclass(frozen=True)
class SmtpSettings:
    """The `[smtp]` table. Email is sent only when `host` is set."""

    host: str = ""
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none (none: only to a loopback relay)
    username: str = ""
    # The environment variable holding the password (never the password itself).
    password_env: str = "HKMA_TRACKER_SMTP_PASSWORD"  # noqa: S105
    sender: str = field(default="HKMA Tracker <hkma-tracker@localhost>", metadata={"key": "from"})
    timeout: float = 30
    ca_bundle: str = ""  # a PEM file of extra CA certificates


class SmtpChannel(Channel):
    """Email over SMTP: STARTTLS or SMTPS with certificate verification; `none` only to a
    loopback relay. The password comes from the environment variable the config names."""

    name = "smtp"

    def __init__(
        self, settings: SmtpSettings, is_local: Callable[[str], bool] = lambda host: False
    ) -> None:
        self.settings = settings
        self.is_local = is_local  # whether a host is this machine (a login without TLS is
        # allowed only to such a relay); given by the caller, who knows what "local" means

    def _password(self) -> str:
        variable = self.settings.password_env
        password = os.environ.get(variable)
        if password is None:
            raise DeliveryError(f"smtp: username is set but ${variable} is empty or not set")
        return password

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_bundle or None)

    def send(self, message: dict[str, Any]) -> str:
        s = self.settings
        host, port, security = s.host, s.port, s.security
        recipients = json.loads(message["recipients"])
        if security == "none" and s.username and not self.is_local(host):
            raise DeliveryError(
                f"smtp: refusing to log in to {host} without TLS (security 'none' is only "
                "for a relay on this machine)"
            )
        sending = False  # set once the DATA command goes out: from then on, it may arrive
        try:
            client: smtplib.SMTP
            if security == "ssl":
                client = smtplib.SMTP_SSL(timeout=s.timeout, context=self._context())
            else:
                client = smtplib.SMTP(timeout=s.timeout)
            # Connected here rather than in the constructor, so that a connection cut short (the
            # run's deadline) is still closed; smtplib keeps the host for STARTTLS's
            # certificate check only when the constructor connects.
            client._host = host  # type: ignore[attr-defined]
            try:  # not `with client`: on a failure its QUIT would wait on a server gone mute
                code, answer = client.connect(host, port)
                if code != 220:
                    raise smtplib.SMTPConnectError(code, answer)
                client.ehlo()
                if security == "starttls":
                    if not client.has_extn("starttls"):
                        raise DeliveryError(f"smtp: {host} does not offer STARTTLS; not logging in")
                    client.starttls(context=self._context())
                    client.ehlo()
                if s.username:
                    _login(client, s.username, self._password())
                code, answer = client.mail(s.sender)
                if code != 250:
                    raise smtplib.SMTPSenderRefused(code, answer, s.sender)
                refused = {}
                for recipient in recipients:
                    code, answer = client.rcpt(recipient)
                    if code not in (250, 251):
                        refused[recipient] = (code, answer)
                if len(refused) == len(recipients):
                    raise smtplib.SMTPRecipientsRefused(refused)
                sending = True
                code, answer = client.data(bytes(message["eml"]))
                if code != 250:  # the server answered after the message: it refused it
                    raise smtplib.SMTPDataError(code, answer)
                with contextlib.suppress(Exception):  # taken: a QUIT that fails changes nothing
                    client.quit()
            finally:
                client.close()
        except DeliveryError:
            raise
        except UnicodeError as error:  # its message would quote the text: never the password
            raise DeliveryError(
                f"smtp: {host}: text that {error.__class__.__name__} could not encode "
                f"({getattr(error, 'encoding', '?')})"
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            refusals = ", ".join(sorted(str(r) for r in error.recipients))
            raise DeliveryError(f"smtp: {host} refused {refusals}") from None
        except smtplib.SMTPResponseException as error:  # an answer: surely not taken
            raise DeliveryError(f"smtp: {host} answered {error.smtp_code}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as error:
            # Cut off while sending the message: it may have arrived all the same.
            raise DeliveryError(
                f"smtp: {host}:{port}: {type(error).__name__}: {error}", maybe_delivered=sending
            ) from None
        accepted = [r for r in recipients if r not in refused]
        where = f"smtp://{host}:{port} to {', '.join(accepted)}"
        # Sent to the others: a retry would send them a second copy. Said, not retried.
        return where + (f" (refused: {', '.join(sorted(refused))})" if refused else "")


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """SMTP AUTH. smtplib encodes credentials as ASCII only; non-ASCII ones go as AUTH PLAIN
    in UTF-8, as RFC 4616 defines it."""
    if (username + password).isascii():
        client.login(username, password)
        return
    if "PLAIN" not in client.esmtp_features.get("auth", "").upper().split():
        raise DeliveryError(
            "smtp: the credentials are not ASCII and the server offers no AUTH PLAIN to send "
            "them as UTF-8"
        )
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, _ = client.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, b"authentication failed")


class WebhookChannel(Channel):
    """JSON POST to an incoming webhook (payload shaped for Slack, Teams or plain JSON)."""

    name = "webhook"

    def __init__(self, timeout: float = 30) -> None:
        self.timeout = timeout

    def send(self, message: dict[str, Any]) -> str:
        (url,) = json.loads(message["recipients"])
        if urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError(f"webhook: {url} is not an http(s) URL")
        request = urllib.request.Request(
            url,
            data=message["payload"].encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            raise DeliveryError(f"webhook: {urlsplit(url).netloc} answered {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            # Refused or not resolved: surely not taken. Anything else (a timeout, a reset)
            # may have come after the request arrived.
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            surely_not = isinstance(reason, ConnectionRefusedError | socket.gaierror)
            raise DeliveryError(
                f"webhook: {urlsplit(url).netloc}: {error}", maybe_delivered=not surely_not
            ) from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook: {urlsplit(url).netloc} answered {status}")
        return url
