"""Channels deliver a digest somewhere. Adding a channel is adding one subclass of Channel."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from alerts.digest import Digest


class Channel(ABC):
    name: ClassVar[str]

    @abstractmethod
    def deliver(self, digest: Digest) -> str:
        """Deliver the digest; return where it went. Raise if it did not go."""


class FileChannel(Channel):
    """Writes `<stem>.txt`, `.html` and `.eml` into a folder (the default channel)."""

    name = "file"

    def __init__(self, folder: Path, sender: str = "hkma-tracker@localhost") -> None:
        self.folder = folder
        self.sender = sender

    def deliver(self, digest: Digest) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = (
            f"digest-{digest.created_at.strftime('%Y%m%dT%H%M%SZ')}-{digest.entries[0].change_id}"
        )
        outputs = {
            ".txt": digest.render_text().encode("utf-8"),
            ".html": digest.render_html().encode("utf-8"),
            ".eml": digest.to_email(self.sender, []).as_bytes(),
        }
        for suffix, data in outputs.items():
            path = self.folder / f"{stem}{suffix}"
            tmp = path.with_suffix(suffix + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return str(self.folder / f"{stem}.html")
