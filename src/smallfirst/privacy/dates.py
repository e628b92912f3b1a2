"""Dates a person could be identified by: numeric and ISO dates, English month names and
weekdays, years after a cue word, dates written with the month names of German, French,
Spanish, Italian, Portuguese and Dutch, and eight-digit dates (YYYYMMDD) after a
date-of-birth word. General formats, never values from a data set."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

from smallfirst.privacy.month_names import (
    AMBIGUOUS_MONTH_NAMES,
    EUROPEAN_MONTH_ABBREVIATIONS,
    EUROPEAN_MONTH_NAMES,
)
from smallfirst.privacy.patterns import MONTH, WEEKDAY, RuleMatch, literal_alternation

# A weekday, or its abbreviation before a date ("Sun, Apr 10", "Thu Jun 21"; alone, "Sun" and
# "Sat" are words)
_WEEKDAY = WEEKDAY
_WEEKDAY_OPENING = rf"(?:{WEEKDAY}|(?:Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\.?)"
# ISO 8601 / RFC 3339 times may carry a fraction of a second and a UTC offset
_TIME = (
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"
    r"(?:\s?[AaPp]\.?[Mm]\.?|Z|[+-]\d{2}:?\d{2})?)"
)
# Day and month are 1-31 and 1-12, and a date is not followed by more dotted digits: "17.0.10"
# and "1.2.10.4" are versions.
_DAY_OR_MONTH = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH_NUMBER = r"(?:0?[1-9]|1[0-2])"
_DATE_PATTERN = (  # (a digit, or a month's or weekday's capital, first: one test a word)
    rf"\b(?=[\dADFJMNOSTW])(?:"
    rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}{_TIME}?"
    # year first with a slash or a dot, as East Asian dates are written: "1985/07/23",
    # "1967.08.21" (two-digit month and day after a dot: "2024.1.2" is a version)
    rf"|(?:19|20)\d\d(?:/{_MONTH_NUMBER}/{_DAY_OR_MONTH}|\.(?:0[1-9]|1[0-2])\.(?:0[1-9]|[12]\d|3[01]))"
    rf"(?![./]\d){_TIME}?"
    rf"|{_DAY_OR_MONTH}(?:[/.]{_DAY_OR_MONTH}[/.]\d{{2,4}}(?!\.\d){_TIME}?"
    # the web server log's "10/Oct/2024:13:55:36 +0000"
    rf"|/{MONTH}/\d{{4}}(?::\d{{2}}){{3}}(?:\s[+-]\d{{4}})?)"
    # the time before the year: C's and Unix's "Sun Oct 09 18:43:19 1983"
    rf"|(?:{_WEEKDAY_OPENING},?\s+)?{MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?"
    rf"(?:{_TIME}\s\d{{4}}(?!\d)|(?:,?\s+\d{{4}})?{_TIME}?)"
    # "3 March", "3rd of March", a deed's "3rd day of March, 2024"
    rf"|(?:{_WEEKDAY_OPENING},?\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:day\s+of\s+|of\s+)?{MONTH}\.?"
    rf"(?:,?\s+\d{{4}})?"
    rf"|{MONTH}\s+\d{{4}}"
    rf"|{_WEEKDAY}"
    rf")\b"
)
_DATE = re.compile(_DATE_PATTERN)
# A text typed all in lower case ("may 17", "mon, mar 21", "thursday") has no capitals to
# tell a month from a word; its dates are read without them.
_LOWER_CASE_DATE = re.compile(_DATE_PATTERN, re.IGNORECASE)
# Times of day: with "am"/"pm" ("10:02 AM", "6:23AM", "9 PM"), after a weekday ("Mon 14:22"),
# the timestamps that open a line of a chat or log ("[09:14] Ann: ...", "11:47 job done"), and
# times with seconds ("at 14:22:05").
# A bare "3:16" may be a ratio, a score or a verse, and "at 11:34" names an hour of no one.
_AM_PM = r"[AaPp](?:\.[Mm]\.|[Mm]\b)"
_CLOCK = re.compile(
    rf"(?<![\w:.])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:(?={_AM_PM})|(?!\w|:\d))"
)
_AM_PM_AFTER = re.compile(rf"\s?{_AM_PM}")
_HOUR_AM_PM = re.compile(rf"(?<![\w:.,])(?:1[0-2]|0?[1-9])\s?{_AM_PM}")
_WEEKDAY_BEFORE = re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\.?,?[ \t]$")
_LINE_OPENING = re.compile(r"(?:^|\n)\[?$")


def _opens_a_line(text: str, start: int, end: int) -> bool:
    """A timestamp at the start of a line: "[09:14] Ann: hi", "09:14 Ann: hi"."""
    if _LINE_OPENING.search(text, max(0, start - 2), start) is None:
        return False
    if text[start - 1 : start] == "[":
        return text.startswith("]", end)
    return text[end : end + 1] in (" ", "\t")


def _outside(times: Iterator[RuleMatch], dates: list[RuleMatch]) -> Iterator[RuleMatch]:
    """The times that no date holds ("18:43:19" of "Sun Oct 09 18:43:19 1983"); both come in
    the order of the text."""
    index = 0
    for time in times:
        while index < len(dates) and dates[index].end <= time.start:
            index += 1
        if index == len(dates) or not (
            dates[index].start <= time.start and time.end <= dates[index].end
        ):
            yield time


def _times_of_day(text: str) -> Iterator[RuleMatch]:
    for match in _CLOCK.finditer(text):
        start, end = match.span()
        am_pm = _AM_PM_AFTER.match(text, end)
        weekday = _WEEKDAY_BEFORE.search(text, max(0, start - 6), start)
        if am_pm is not None:
            end = am_pm.end()
        elif weekday is not None:
            start = weekday.start()
        elif match.group().count(":") < 2 and not _opens_a_line(text, start, end):
            continue  # "14:22:05" is a clock time, wherever it stands
        yield RuleMatch("DATE_TIME", start, end, 0.6)


# Month names that are also words or names count only in a date that says it is one (below);
# abbreviations only with a full stop and a year ("set", "out", "ago", "gen" are English words).
_UNAMBIGUOUS = literal_alternation(
    name for name in EUROPEAN_MONTH_NAMES if name not in AMBIGUOUS_MONTH_NAMES
)
_AMBIGUOUS = literal_alternation(AMBIGUOUS_MONTH_NAMES)
_ABBREVIATION = literal_alternation(EUROPEAN_MONTH_ABBREVIATIONS)
_YEAR_AFTER_MONTH = r",?\s+(?:(?i:del?)\s+)?\d{4}(?!\d)"
# "14. März 1987", "1er avril", "3 de julio de 1990", "1º maggio" (which the view, in NFKC,
# reads "1o maggio"), "12 settembre 1985", "Februar 2001", "julio de 2015". An ambiguous name
# needs a year, an ordinal day ("1. Mai", "1er mai") or "de" ("2 de mayo", "mayo de 2020"):
# "2 Mars rovers" and "Mars 2020" are no dates.
_FOREIGN_DATE = re.compile(
    rf"(?<![\w.,:/])(?:{_DAY_OR_MONTH}(?:"
    rf"(?:\.\s*|(?:er|[º°ªoa])\s+)(?:(?i:de)\s+)?(?i:{_UNAMBIGUOUS}|{_AMBIGUOUS})(?!\w)"
    rf"|\s+(?i:de)\s+(?i:{_UNAMBIGUOUS}|{_AMBIGUOUS})(?!\w)"
    rf"|\s+(?i:{_UNAMBIGUOUS})(?!\w)"
    rf"|\s+(?i:{_AMBIGUOUS})(?={_YEAR_AFTER_MONTH})"
    rf"|(?:\.\s*|(?:er|[º°ªoa])?\s+)(?:(?i:de)\s+)?(?i:{_ABBREVIATION})\.(?={_YEAR_AFTER_MONTH})"
    rf")(?:{_YEAR_AFTER_MONTH})?"
    rf"|(?i:{_UNAMBIGUOUS}){_YEAR_AFTER_MONTH}"
    rf"|(?i:{_AMBIGUOUS})\s+(?i:del?)\s+\d{{4}}(?!\d))"
)

_YEAR = re.compile(r"\b(?:1[89]\d\d|20\d\d)s?\b")
_YEAR_CONTEXT = re.compile(
    r"(?i)\b(?:in|since|of|during|from|until|till|by|born|year|founded|established|"
    r"died|before|after|between|and|circa|c\.|early|late|mid|spring|summer|autumn|fall|winter)"
    r"\W{0,3}$"
)
_YEAR_BLOCK_AFTER = re.compile(r"^\s?(?:[%$€£]|kg|km|mg|ml|px|rpm|USD|EUR|dollars|euros|people)")

# YYYYMMDD, a date only where a word before it says so: eight digits alone are as often an
# order, build or invoice number.
_EIGHT_DIGITS = re.compile(
    r"(?<![\w.\-/])((?:19|20)\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\w)"
)
# The word just before: a date-of-birth word or "date" in English or the languages above, as
# prose or as a field name ("DOB:", "born on", "geboren am", "née le", '"patient_dob": "',
# "birthDate=", "Date of birth (YYYYMMDD):"); not inside a word ("update", "validate").
_EIGHT_DIGIT_CUE = re.compile(
    r"(?:(?<![A-Za-z])(?i:d\.?o\.?b\.?|born|birth(?:day|date)?|geboren|geb\.?|née?|date|datum"
    r"|fecha|naissance|nacimiento|nascita|nascimento|geburtsdatum|geboortedatum)"
    r"|(?<=[a-z])(?:Dob|DOB|Birth(?:day|date)?|Date|Datum))"
    r"(?:[_\-\s]?(?i:of)[_\-\s]?(?i:birth))?"
    r"[\"'\s:=#\-]*(?:\([A-Za-z./\-]{2,12}\)[\s:=]*)?(?:(?i:is|was|on|am|le|el|il|op|em)\s+)?$"
)


_AGE_OR_DURATION = re.compile(r"(?i)\b(?:years?|months?|weeks?|days?|old|age|aged)\b")


def is_explicit_date(text: str) -> bool:
    """True for dates a person could be identified by (a day, month or year), False for
    relative expressions and durations ("next week", "8+ years", "the age of 66")."""
    if _DATE.search(text) or _FOREIGN_DATE.search(text):
        return True
    return bool(_YEAR.search(text)) and not _AGE_OR_DURATION.search(text)


def _is_calendar_day(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:  # "20230230"
        return False
    return True


def find_dates(text: str) -> Iterator[RuleMatch]:
    found = [
        RuleMatch("DATE_TIME", match.start(), match.end(), 0.6)
        for match in (_LOWER_CASE_DATE if text.islower() else _DATE).finditer(text)
    ]
    yield from found
    if ":" in text:
        yield from _outside(_times_of_day(text), found)
    for match in _HOUR_AM_PM.finditer(text):
        yield RuleMatch("DATE_TIME", match.start(), match.end(), 0.6)
    for match in _FOREIGN_DATE.finditer(text):
        yield RuleMatch("DATE_TIME", match.start(), match.end(), 0.6)
    for match in _YEAR.finditer(text):
        before = text[max(0, match.start() - 16) : match.start()]
        after = text[match.end() : match.end() + 8]
        if _YEAR_CONTEXT.search(before) and not _YEAR_BLOCK_AFTER.match(after):
            yield RuleMatch("DATE_TIME", match.start(), match.end(), 0.55)
    for match in _EIGHT_DIGITS.finditer(text):
        before = text[max(0, match.start() - 40) : match.start()]
        if _EIGHT_DIGIT_CUE.search(before) and _is_calendar_day(*match.groups()):
            yield RuleMatch("DATE_TIME", match.start(), match.end(), 0.6)
