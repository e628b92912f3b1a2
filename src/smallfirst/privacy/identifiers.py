"""Identifiers a request carries upstream: participant names, function names, the property
names of a schema. They are read as words ("Maria_Gonzalez" as "Maria Gonzalez"). A schema's
regular expressions (`pattern`) go with them: they are read as the text they match where
that is spelled out (`^jane@acme\\.com$` as " jane@acme.com ").

A function name or a property name cannot be redacted: the model picks a tool by its name
and calls it by that name, and writes a schema's property names back as they are; a
placeholder there breaks the call (tool definitions' names are also `^[A-Za-z0-9_-]{1,64}$`).
So PII in one keeps the request on local tiers where the policy would redact it
(`policy.resolve_action`, `redactable`).

What counts as PII in such a name is narrower than in prose, as a false finding there keeps
every request of an application local, not one word redacted: values that patterns with a
check find (an address, a phone, a card...), and people, places and such values that the
request holds elsewhere too ("Tomasz Kowalski" in a message, then a tool `remind_Tomasz`).
Names that only the NER or the name rules see do not count: identifiers are lower or title
case by convention, and the detector called 14 of 147 tool names made of products and verbs
("docker_run", "wikipedia_search", "coinbase_price") a person or a place, and 10 of 73 in
title or camel case ("Search_Web", "GetWeather"); a name only in a tool's name
("notify_maria_gonzalez") is not found.
"""

from __future__ import annotations

import ipaddress
import re

from smallfirst.privacy.detect import SUPPORTED_ENTITIES

# Types found by the NER and the name rules; the others come from patterns with a check
# (checksum, suffix list, number plan, prefix).
_FOUND_BY_LANGUAGE = frozenset({"PERSON", "LOCATION", "DATE_TIME"})
CHECKED_TYPES = frozenset(SUPPORTED_ENTITIES) - _FOUND_BY_LANGUAGE
# What counts in such a name when the request holds the same value elsewhere; not a date: a
# year or a weekday in one ("report_2024", "Monday_Digest") is no one's.
COUNTED_IN_NAMES = frozenset(SUPPORTED_ENTITIES) - {"DATE_TIME"}
# Why PII there keeps a request local, for the messages that say so.
UNREDACTABLE_NAMES = (
    "some in a function or property name or a schema's pattern, which cannot be redacted"
)

_SEPARATORS = re.compile(r"[_.-]+")


def names_someone(entity_type: str, value: str) -> bool:
    """Whether a value found in such a name can be someone's. A loopback or unspecified IP
    address (`^(localhost|127\\.0\\.0\\.1)$`, `0.0.0.0`, `::1` in a host's pattern) is every
    machine's own."""
    if entity_type != "IP_ADDRESS":
        return True
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return True
    return not (address.is_loopback or address.is_unspecified)


def identifier_as_text(identifier: str) -> str:
    """The identifier as words; an e-mail address as it is (its dots are its own)."""
    if "@" in identifier:
        return identifier
    return _SEPARATORS.sub(" ", identifier)


# In a regular expression: escaped punctuation ("\\.", "\\+"), read as itself (re.escape's work
# undone), and anchors, groups and alternation, read as spaces between the literals.
_REGEX_SYNTAX = re.compile(r"\\([^\w\s])|[\^$()|]")


def pattern_as_text(pattern: str) -> str:
    """A regular expression as the text it spells out: `^(ana@x\\.io|bob@x\\.io)$` reads
    " ana@x.io bob@x.io  "; classes such as `\\d` stay as they are."""
    return _REGEX_SYNTAX.sub(lambda m: m.group(1) or " ", pattern)
