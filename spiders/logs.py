"""Log lines as one JSON object each, for log collectors: the tracker's and its crawl
processes' alike (`--log-format json`; the crawl child reads LOG_FORMAT_ENV)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Set by the tracker's command line for every process it starts.
LOG_FORMAT_ENV = "HKMA_TRACKER_LOG_FORMAT"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message (and the error, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
