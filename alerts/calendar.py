"""Deadlines as an RFC 5545 calendar that Outlook and Google Calendar can subscribe to.

One all-day event per deadline. Its UID is stable, so that a new export updates the events a
calendar holds rather than adding to them; SEQUENCE grows each time its date moved; a deadline
that no longer stands (its document superseded or withdrawn, its date no longer stated) stays
as a cancelled event, so that subscribed calendars drop it. Each event reminds 30 and 7 days
ahead."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PRODID = "-//hkma-tracker//deadlines//EN"
REMINDERS_DAYS = (30, 7)
_SAFE_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f-\x9f\"<>\\^`{|}]+")


@dataclass(frozen=True)
class CalendarEntry:
    uid: str
    day: date
    summary: str
    description: str
    url: str
    sequence: int = 0
    cancelled: bool = False
    regulator: str = ""  # who set the date (HKMA, SFC, IA): the event's category


def calendar_name(tags: dict[str, list[str]]) -> str:
    """What a calendar app calls the deadlines of this scope: "SFC deadlines (AML/CFT)"."""
    scope = ", ".join(tags.get("functions", []) + tags.get("products", []))
    regulators = " and ".join(tags.get("regulators", [])) or "Regulatory"
    return f"{regulators} deadlines" + (f" ({scope})" if scope else "")


def calendar_bytes(entries: list[CalendarEntry], name: str, now: datetime | None = None) -> bytes:
    """The calendar of `entries` as an .ics file's bytes (CRLF lines, folded as RFC 5545 asks)."""
    from icalendar import Alarm, Calendar, Event  # here: a command that writes none skips it

    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    for entry in entries:
        event = Event()
        event.add("uid", entry.uid)
        event.add("dtstamp", stamp)
        event.add("dtstart", entry.day)  # a date: an all-day event
        event.add("dtend", entry.day + timedelta(days=1))
        event.add("summary", entry.summary)
        event.add("description", entry.description)
        if entry.regulator:
            event.add("categories", [entry.regulator])
        if _SAFE_URL.fullmatch(entry.url):  # a URI property is not escaped: only a clean one
            event.add("url", entry.url)
        event.add("sequence", entry.sequence)
        event.add("transp", "TRANSPARENT")  # a deadline does not make anyone busy
        event.add("status", "CANCELLED" if entry.cancelled else "CONFIRMED")
        if not entry.cancelled:
            for days in REMINDERS_DAYS:
                alarm = Alarm()
                alarm.add("action", "DISPLAY")
                alarm.add("description", f"In {days} days: {entry.summary}")
                alarm.add("trigger", timedelta(days=-days))
                event.add_component(alarm)
        calendar.add_component(event)
    return calendar.to_ical()
