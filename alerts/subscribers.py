"""Subscribers: who gets which changes, and when (cadences in Hong Kong time)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

HONG_KONG = timezone(timedelta(hours=8), "HKT")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FILTER_KEYS = (
    "functions", "products", "entity_types", "regulators", "sources", "kinds", "keywords",
)  # fmt: skip
SUBSCRIBER_KEYS = {
    "name", "emails", "webhook", "webhook_format", "cadence", "include_cosmetic", "calendar",
    "untagged",
}  # fmt: skip
TAG_FILTERS = ("functions", "products", "entity_types")
UNTAGGED_CHOICES = ("include", "exclude")
SUBSCRIBER_KEYS |= set(FILTER_KEYS)
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_CADENCE = re.compile(
    r"^(run|daily (\d{1,2}):(\d{2})|weekly (mon|tue|wed|thu|fri|sat|sun) (\d{1,2}):(\d{2}))$"
)


class SubscriberError(ValueError):
    """A subscriber entry is unusable; the message names the subscriber and key."""


# Every spelling a filter accepts, casefolded -> the name it means (a tag's name and the
# aliases the taxonomy gives it; a source's name; a change kind).
Vocabulary = dict[str, str]
KIND_NAMES: Vocabulary = {k: k for k in ("new", "changed", "removed")}


class UnknownName(ValueError):
    """A filter value matches nothing: an empty answer would look like "no such changes"."""


def resolve_names(what: str, given: Iterable[str], vocabulary: Vocabulary) -> tuple[str, ...]:
    """The names `given` values mean: names or aliases, in any case. The one matcher of every
    filter (CLI options and subscriber config); a value that matches nothing is an error
    naming `what` and the known names."""
    names = []
    for value in given:
        name = vocabulary.get(value.strip().casefold())
        if name is None:
            known = ", ".join(sorted(set(vocabulary.values()), key=str.casefold))
            raise UnknownName(f"{what}: {value!r} is not one of the known names ({known})")
        names.append(name)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Cadence:
    kind: str  # run | daily | weekly
    at: time | None = None
    weekday: int | None = None

    def window_start(self, now: datetime) -> datetime | None:
        """Start (UTC) of the cadence window `now` falls in; None for 'run' (every run)."""
        if self.kind == "run" or self.at is None:
            return None
        local = now.astimezone(HONG_KONG)
        start = local.replace(hour=self.at.hour, minute=self.at.minute, second=0, microsecond=0)
        if self.kind == "weekly" and self.weekday is not None:
            start -= timedelta(days=(local.weekday() - self.weekday) % 7)
        if start > local:
            start -= timedelta(days=7 if self.kind == "weekly" else 1)
        return start.astimezone(UTC)

    def due(self, last_digest_at: datetime | None, now: datetime) -> bool:
        """Whether a digest may be built now: one per window, each run for 'run'."""
        start = self.window_start(now)
        return start is None or last_digest_at is None or last_digest_at < start


def parse_cadence(text: str) -> Cadence:
    match = _CADENCE.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not 'run', 'daily HH:MM' or 'weekly mon HH:MM'")
    if match.group(1) == "run":
        return Cadence("run")
    if match.group(2):
        return Cadence("daily", time(int(match.group(2)), int(match.group(3))))
    return Cadence(
        "weekly", time(int(match.group(5)), int(match.group(6))), WEEKDAYS.index(match.group(4))
    )


@dataclass(frozen=True)
class Route:
    """Why a change goes to a subscriber: `via` "everything" (no filter), "filters" (every
    filter given matched: `matched` names the tag or value of each), "untagged" (a binding
    instrument without a tag of the filtered kinds: `untagged` names them) or "correction"
    (an officer's tag made it match)."""

    via: str
    matched: dict[str, list[str]]
    untagged: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"via": self.via, "matched": self.matched, "untagged": list(self.untagged)}


@dataclass(frozen=True)
class Exclusion:
    """Why a change does not go to a subscriber: the filter and what the change had."""

    filter: str
    wanted: tuple[str, ...]
    had: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Subscriber:
    name: str
    emails: tuple[str, ...] = ()
    webhook: str | None = None
    webhook_format: str = "json"
    cadence: Cadence = Cadence("run")
    include_cosmetic: bool = False
    calendar: bool = False  # attach the deadlines calendar when a digest's deadlines changed
    # A binding instrument that the rules gave no tag of a filtered kind: sent in its own
    # section ("include") or filtered out like any other change ("exclude").
    untagged: str = "include"
    functions: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    regulators: tuple[str, ...] = ()  # HKMA, SFC, IA
    sources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    def describe(self) -> str:
        """Whose digest, in words: the name and the filters that choose its changes."""
        chosen = [
            f"{key.replace('_', ' ')}: {', '.join(values)}"
            for key in FILTER_KEYS
            if (values := getattr(self, key))
        ]
        if self.untagged == "include" and any(getattr(self, k) for k in TAG_FILTERS):
            chosen.append("and binding instruments the rules could not tag")
        return self.name + (f" ({'; '.join(chosen)})" if chosen else " (everything)")

    def matches(self, change: dict[str, Any]) -> bool:
        """Whether a change event (with its document's tags) is for this subscriber."""
        return isinstance(self.route(change), Route)

    def route(self, change: dict[str, Any]) -> Route | Exclusion:
        """Whether and why a change event (with its document's tags, and `binding`: whether
        it is a binding instrument or consultation) is for this subscriber. Within a filter
        any value may match; every filter given must. A binding instrument with no tag of a
        filtered kind passes that filter as untagged, unless `untagged = "exclude"`."""
        if change.get("baseline"):
            return Exclusion("baseline", (), (), "a listing's first reading is not sent")
        if change.get("significance") == "cosmetic" and not self.include_cosmetic:
            return Exclusion("include_cosmetic", (), (), "a cosmetic change")
        matched: dict[str, list[str]] = {}
        untagged = []
        for kind in TAG_FILTERS:
            wanted, had = getattr(self, kind), tuple(change.get(kind) or [])
            if not wanted:
                continue
            if shared := [t for t in wanted if t in had]:
                matched[kind] = shared
            elif not had and change.get("binding") and self.untagged == "include":
                untagged.append(kind)
            else:
                reason = "has none of them" if had else "has no tag of this kind"
                return Exclusion(kind, wanted, had, reason)
        for key, value in (
            ("regulators", change.get("regulator") or "HKMA"),
            ("sources", change["source"]),
            ("kinds", change["kind"]),
        ):
            wanted = getattr(self, key)
            if wanted and value not in wanted:
                return Exclusion(key, wanted, (value,), "not one of them")
            if wanted:
                matched[key] = [value]
        if self.keywords:
            haystack = f"{change['title']} {change.get('diff', '')}".casefold()
            found = [k for k in self.keywords if k.casefold() in haystack]
            if not found:
                return Exclusion("keywords", self.keywords, (), "none in its title or change")
            matched["keywords"] = found
        if untagged:
            return Route("untagged", matched, tuple(untagged))
        return Route("filters" if matched else "everything", matched)


# Everyone gets everything substantive when no subscriber is configured (the file channel).
EVERYONE = Subscriber(name="digest")


def parse_subscribers(entries: Any, vocabularies: dict[str, Vocabulary]) -> list[Subscriber]:
    """Subscribers from the config's `[[subscribers]]`, checked; errors name subscriber and key.
    `vocabularies`: what the functions, products, entity_types, regulators and sources filters
    accept."""
    if not isinstance(entries, list):
        raise SubscriberError("subscribers must be an array of tables ([[subscribers]])")
    subscribers, names = [], set()
    for n, entry in enumerate(entries):
        label = f"subscribers[{n}]"
        if not isinstance(entry, dict):
            raise SubscriberError(f"{label} must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SubscriberError(f"{label}: name is required")
        label = f"subscriber {name!r}"
        if name in names:
            raise SubscriberError(f"{label}: the name is used twice")
        names.add(name)
        if unknown := set(entry) - SUBSCRIBER_KEYS:
            raise SubscriberError(f"{label}: unknown key {sorted(unknown)[0]!r}")
        values: dict[str, Any] = {"name": name}
        for key in ("emails", *FILTER_KEYS):
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SubscriberError(f"{label}: {key} must be a list of strings")
            values[key] = tuple(value)
        for email in values["emails"]:
            if not _EMAIL.match(email):
                raise SubscriberError(f"{label}: emails: {email!r} is not an email address")
        try:
            for key, vocabulary in (*vocabularies.items(), ("kinds", KIND_NAMES)):
                values[key] = resolve_names(key, values[key], vocabulary)
        except UnknownName as error:
            raise SubscriberError(f"{label}: {error}") from None
        try:
            values["cadence"] = parse_cadence(str(entry.get("cadence", "run")))
        except ValueError as error:
            raise SubscriberError(f"{label}: cadence: {error}") from None
        untagged = entry.get("untagged", "include")
        if untagged not in UNTAGGED_CHOICES:
            raise SubscriberError(f'{label}: untagged must be "include" or "exclude"')
        values["untagged"] = untagged
        for flag in ("include_cosmetic", "calendar"):
            if not isinstance(entry.get(flag, False), bool):
                raise SubscriberError(f"{label}: {flag} must be true or false")
            values[flag] = entry.get(flag, False)
        webhook = entry.get("webhook")
        if webhook is not None and (
            not isinstance(webhook, str) or not webhook.startswith(("https://", "http://"))
        ):
            raise SubscriberError(f"{label}: webhook must be an http(s) URL")
        values["webhook"] = webhook
        fmt = entry.get("webhook_format", "json")
        if fmt not in ("json", "slack", "teams"):
            raise SubscriberError(f"{label}: webhook_format must be json, slack or teams")
        values["webhook_format"] = fmt
        if not values["emails"] and not webhook:
            raise SubscriberError(f"{label}: give emails or a webhook")
        subscribers.append(Subscriber(**values))
    return subscribers
