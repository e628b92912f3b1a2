"""Rule-based PII matchers in plain Python (no Presidio, no spaCy): secrets, phone numbers in
international formats, street addresses, postal codes, dates, and names after strong cues.

Each matcher yields `RuleMatch`es; `recognizers.py` wraps them for Presidio. They are general
formats (how phone numbers, addresses and keys are written), never values from a data set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

UPPER = r"A-ZÀ-ÖØ-ÞĀ-ſΆ-ΏΑ-ΩА-Я"
LETTER = r"A-Za-zÀ-ÖØ-öø-ÿĀ-ſΆ-ώА-я"
CAP_WORD = rf"[{UPPER}][{LETTER}'’\-]*"


@dataclass(frozen=True, slots=True)
class RuleMatch:
    entity_type: str
    start: int
    end: int
    score: float


def _context_before(text: str, start: int, words: re.Pattern[str], window: int = 60) -> bool:
    return words.search(text[max(0, start - window) : start]) is not None


# --- secrets ---------------------------------------------------------------------------------

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"), 0.95),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"), 0.95),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b"), 0.95),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"), 0.95),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), 0.95),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"), 0.9),
    (re.compile(r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), 0.95),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), 0.9),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), 0.9),
    (
        re.compile(
            r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
        ),
        1.0,
    ),
)
_BEARER = re.compile(r"\b[Bb]earer\s+([A-Za-z0-9_\-.~+/]{16,}=*)")
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd)"
    r"\s*[:=]\s*[\"']?([^\s\"']{8,})"
)


def find_secrets(text: str) -> Iterator[RuleMatch]:
    for pattern, score in _SECRET_PATTERNS:
        for match in pattern.finditer(text):
            yield RuleMatch("SECRET", match.start(), match.end(), score)
    for pattern in (_BEARER, _ASSIGNED_SECRET):
        for match in pattern.finditer(text):
            yield RuleMatch("SECRET", match.start(1), match.end(1), 0.85)


# --- phone numbers ---------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ \t.\-])"
    r"(?:\+\d{1,3}[ \t.\-]?)?"
    r"(?:\(\d{1,5}\)[ \t.\-]?\d{1,8}|\d{2,12})(?:[ \t.\-]\d{2,8}){0,4}"
    r"(?:[ \t]?(?:x|ext\.?|#)[ \t]?\d{1,5})?"
    r"(?![ \t.\-]?\d)(?!\w)"
)
_DATE_LIKE = re.compile(r"^\d{4}[\-./]\d{1,2}[\-./]\d{1,2}$|^\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}$")
_SSN_LIKE = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|call|calls|mobile|cell|tel|telephone|fax|desk|office|number|contact|"
    r"reach|text|sms|whatsapp|dial|messages?|answering|ring)\b"
)
_PHONE_CONTEXT_AFTER = re.compile(r"(?i)^\W{0,3}(?:office|fax|mobile|cell|home|work|phone)\b")


def find_phone_numbers(text: str) -> Iterator[RuleMatch]:
    for match in _PHONE.finditer(text):
        value = match.group()
        digits = sum(ch.isdigit() for ch in value)
        grouped = not value.isdigit()
        if not 7 <= digits <= 15 or _DATE_LIKE.match(value) or _SSN_LIKE.match(value):
            continue
        if not grouped and not value.startswith("+") and digits > 11:
            continue  # a long unbroken digit run is more often an account or card number
        has_context = _context_before(text, match.start(), _PHONE_CONTEXT, 40) or bool(
            _PHONE_CONTEXT_AFTER.match(text[match.end() : match.end() + 12])
        )
        if value.startswith("+") or "(" in value or "x" in value:
            score = 0.75
        elif grouped and (digits >= 9 or any(sep in value for sep in ".-")):
            score = 0.5
        elif grouped:
            score = 0.35
        else:
            score = 0.3
        if has_context:
            score = min(1.0, score + 0.35)
        yield RuleMatch("PHONE_NUMBER", match.start(), match.end(), score)


# --- payment card numbers --------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w\-])\d(?:[ \-]?\d){11,18}(?![\w\-])")
_CARD_CONTEXT = re.compile(r"(?i)\b(?:card|visa|mastercard|amex|maestro|credit|debit|cc)\b")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_card_numbers(text: str) -> Iterator[RuleMatch]:
    """Luhn-valid 12-19 digit numbers; Presidio's own recognizer only knows some issuers."""
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if not luhn_valid(digits) or len(set(digits)) < 3:
            continue
        has_context = _context_before(text, match.start(), _CARD_CONTEXT, 50)
        if len(digits) >= 13 or has_context:
            yield RuleMatch("CREDIT_CARD", match.start(), match.end(), 0.9 if has_context else 0.6)


# --- IBANs in any letter case (Presidio's recognizer wants upper case) ----------------------

_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?\b")


def iban_valid(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return 15 <= len(compact) <= 34 and int(digits) % 97 == 1


def find_ibans(text: str) -> Iterator[RuleMatch]:
    for match in _IBAN.finditer(text):
        if iban_valid(match.group()):
            yield RuleMatch("IBAN_CODE", match.start(), match.end(), 0.9)


# --- street addresses and postal codes -------------------------------------------------------

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|"
    r"Square|Sq|Terrace|Way|Crescent|Close|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Alley|"
    r"Row|Walk|Gardens|Hill|Hills|Mews|Plaza|Loop|Park|Ridge|Grove|View|Green|Path|Pike|"
    r"Point|Heights|Crossing|Junction|Estates|Meadows|Springs|Valley|Village|Wells|Fields|"
    r"Manor|Mall|Port|Rest|Run|Shore|Shores|Station|Summit|Track|Union|Vista|Bypass|Causeway|"
    r"Center|Centre|Common|Corner|Creek|Expressway|Freeway|Gateway|Harbor|Island|Landing|"
    r"Light|Lodge|Mill|Mission|Motorway|Oval|Overpass|Pass|Pines|Prairie|Ramp|Ranch|Route|"
    r"Skyway|Spur|Stravenue|Stream|Throughway|Trace|Trafficway|Tunnel|Turnpike|Underpass|"
    r"Viaduct|Ville|Wall|Wharf)"
)
# Street-name endings and leading words from other languages (Finnish -tie/-katu, Swedish
# -gatan/-vägen, German -straße/-weg, Dutch -straat/-laan, Danish -vej/-gade, ...).
_FOREIGN_STREET = (
    rf"(?:[{UPPER}][{LETTER}]*(?:tie|katu|kuja|polku|gatan|vägen|gränd|väg|straße|strasse|"
    rf"str\.|weg|gasse|platz|allee|straat|laan|gracht|plein|dreef|vej|gade|veien|"
    rf"gata|iela|gatve|utca|ulica|cesta)\b|"
    rf"(?i:ul\.|ulica|rue|avenue|boulevard|chemin|impasse|allée|via|viale|piazza|"
    rf"corso|calle|avenida|avda\.|rua|travessa|largo|plaza|paseo|carrer|strada|odos|calea|"
    rf"aleja|al\.|C/)[ \t]+"
    rf"(?:(?:de|du|des|la|le|les|del|della|delle|dei|di|da|do|dos|das)[ \t]+)*"
    rf"{CAP_WORD}(?:[ \t]+(?:{CAP_WORD}|de|del|da|do|e)){{0,4}}"
    rf"|{CAP_WORD}(?:[ \t]+{CAP_WORD}){{0,2}}[ \t]+(?:u\.|út|útja|utca|tér|ulice|náměstí))"
)
_UNIT = (
    r"(?i:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Room|Floor|Fl\.?|Bldg\.?|Building)[ \t]*#?\d+\w*"
)
_MILITARY = (
    r"(?i:(?:PSC|CMR|Unit)\s\d{3,5},?\s+Box\s\d{3,5}|(?:USS|USNS|USNV|USCGC)\s[A-Z][a-z]+|"
    r"(?:FPO|APO|DPO)\s(?:AA|AE|AP)\s\d{5})"
)
_HOUSE = r"\d{1,6}[A-Za-z]?(?:[\-/]\d{1,4})?"
# Suffixes that rarely end a person's or company's name ("Hill", "Park", "Dr" often do).
_STRONG_STREET_SUFFIX = (
    r"(?:Street|Avenue|Road|Lane|Boulevard|Drive|Court|Place|Square|Terrace|Crescent|Parkway|"
    r"Highway|Turnpike|Expressway|Freeway|Alley|Strasse|Straße|Motorway|Close|Mews|Gardens|"
    r"Plaza|Str\.)"
)
_STREET_LEAD = r"(?:Rua|Rue|Avda\.|Avenida|Calle|Via|Viale|Piazza|Corso|Carrer|Paseo|ul\.|Ulica)"
_ADDRESS_CORE = re.compile(
    rf"(?<![\w.])(?:"
    rf"{_HOUSE}\s+(?:{_HOUSE}\s+)?(?:{CAP_WORD}\s+){{0,4}}{_STREET_SUFFIX}\b\.?"
    rf"|(?:{_HOUSE}[ \t]+){{0,2}}{_FOREIGN_STREET}(?:[ \t]+{_HOUSE}\b)?"
    rf"|(?:{CAP_WORD}[ \t]+){{1,3}}{_STRONG_STREET_SUFFIX}(?:[ \t]+{_HOUSE}\b)?"
    rf"|{_HOUSE}[ \t]+{CAP_WORD}(?:[ \t]+(?:{CAP_WORD}|[a-zà-ÿ]{{1,4}})){{0,3}}"
    rf"[ \t]+\d{{1,4}}[A-Z]?\b(?!['’]?s\b)"
    rf"|(?i:the corner of)\s+[^\n?!]{{2,60}}?\s+and\s+{CAP_WORD}(?:\s+{CAP_WORD}){{0,3}}"
    rf"|{_MILITARY}"
    rf"|{_UNIT}"
    rf"|P\.?\s?O\.?\s+Box\s+\d+"
    rf")"
)
# A title-case street name followed by a house number ("Pagari 18"): weak on its own.
_NAME_NUMBER = re.compile(
    rf"(?<![\w.])(?:{_HOUSE}[ \t]+)?{CAP_WORD}(?:[ \t]+{CAP_WORD}){{0,2}}[ \t]+"
    rf"(?!(?:1[89]|20)\d\d\b)\d{{1,4}}\b"
)
_ADDRESS_CONTEXT = re.compile(
    r"(?i)\b(?:address|addresses|live|lives|living|lived|moved|move|moving|street|located|"
    r"ship|shipping|deliver|delivery|send|mail|visit|resides?|apartment|drops? you off|"
    r"billing|taxi|headquarters|office|where)\b"
)
# Pieces that may follow an address core on the same or the next lines: unit, city, state
# code, country, postal code. Lower-case words end the address, as do sentence stops.
_CONTINUATION = re.compile(
    rf"(?:[ \t]*,)?[ \t]*(?:\n[ \t>?*•\-]*)?(?:,[ \t]*)?"
    rf"(?:{_UNIT}|{_HOUSE}\b|[A-Z0-9]{{2,4}}[ \-]?[0-9][A-Z0-9]{{1,3}}\b|"
    rf"(?:(?:de|du|la|le|del|di|da|van|der|den|am|an)\s+)?{CAP_WORD}\.?(?:\s*\([^()\n]{{1,30}}\))?)"
)
_MAX_CONTINUATION = 10
_STOP_WORDS = frozenset(
    {"I", "Please", "Thank", "Thanks", "The", "This", "That", "It", "We", "You", "My", "And",
     "But", "Can", "Could", "Would", "Mobile", "Desk", "Fax", "Phone", "Email", "E", "Tel",
     "Office", "Website", "Name", "Date", "When", "Where", "Sincerely", "Regards", "Dear"}
)  # fmt: skip


def _starts_with_phone_line(text: str, position: int) -> bool:
    line_start = text.index("\n", position) + 1
    line = text[line_start : text.find("\n", line_start) if "\n" in text[line_start:] else None]
    phone = _PHONE.match(line.lstrip(" \t>?*•-"))
    return phone is not None and sum(ch.isdigit() for ch in phone.group()) >= 7


def _extend_address(text: str, end: int) -> int:
    for _ in range(_MAX_CONTINUATION):
        match = _CONTINUATION.match(text, end)
        if match is None:
            break
        piece = match.group().strip(" \t\n,").rstrip(".")
        if piece in _STOP_WORDS or text[match.end() : match.end() + 1] == ":":
            break
        if "\n" in match.group() and _starts_with_phone_line(text, match.start()):
            break
        if text.count("\n", end, match.end()) and match.group().lstrip(" \t,").startswith("\n\n"):
            break
        end = match.end()
        if text[end - 1 : end] == "." and not re.search(
            r"(?:Apt|St|Ste|Fl|Bldg|[A-Z])\.$", text[:end]
        ):
            end -= 1
    return end


def find_addresses(text: str) -> Iterator[RuleMatch]:
    covered_until = -1
    for match in _ADDRESS_CORE.finditer(text):
        if match.start() < covered_until:
            continue
        end = _extend_address(text, match.end())
        covered_until = end
        yield RuleMatch("LOCATION", match.start(), end, 0.7)
    for match in _NAME_NUMBER.finditer(text):
        if match.start() < covered_until:
            continue
        end = _extend_address(text, match.end())
        spans_lines = "\n" in text[match.start() : end] or "," in text[match.end() : end]
        if _context_before(text, match.start(), _ADDRESS_CONTEXT) or spans_lines:
            covered_until = end
            yield RuleMatch("LOCATION", match.start(), end, 0.6)


# "... lives at 74678 midtvollen 130 st.": after a phrase that announces an address, a number
# starts one, whatever the case of the words that follow; it runs to the end of the clause.
_ADDRESS_CUE = re.compile(
    r"(?i)\b(?:lives? at|living at|address(?: is)?:?|located at|off at|(?:office|home|house|shop|"
    r"store|restaurant|hotel|apartment|flat|studio|clinic|school|station|place) is at|"
    r"ship(?:ped)? (?:it )?to|deliver(?:ed)? (?:it )?to|send (?:it )?to|enter on|return to|"
    r"moved to|live on|lives on)[ \t]+"
    r"(?=\d{2,})(?!\d+(?::\d\d)?\s*(?:am|pm|a\.m|p\.m|o'clock|%|percent|h\b|hours|minutes))"
)
_CLAUSE = re.compile(r"\d+[A-Za-z]?[ \t][^\n?!;:()\"]{2,80}?(?=[.?!;:()\"](?:\s|$)|\n|$)")


def find_cued_addresses(text: str) -> Iterator[RuleMatch]:
    for cue in _ADDRESS_CUE.finditer(text):
        clause = _CLAUSE.match(text, cue.end())
        if clause is not None and re.search(rf"[{LETTER}]{{3}}", clause.group()):
            yield RuleMatch("LOCATION", clause.start(), _extend_address(text, clause.end()), 0.6)


_POSTCODE_CONTEXT = re.compile(r"(?i)\b(?:zip|zipcode|zip code|postcode|postal code|post code)\b")
_POSTCODE = re.compile(r"\b(?:[A-Z0-9]{2,4}[ \-]?[0-9][A-Z0-9]{1,3}|\d{3,6}(?:[ \-]\d{2,4})?)\b")


_PLACE_CUE = re.compile(
    rf"\b(?:[Ff]lew to|[Ff]ly(?:ing)? to|[Tt]ravel(?:l)?ing to|[Tt]ravel(?:l)?ed to|[Mm]oved to|"
    rf"[Mm]oved here from|[Mm]oving to|[Ll]ives? in|[Ll]iving in|[Bb]orn in|[Bb]ased in|"
    rf"[Ll]ocated in|[Oo]riginally from|[Cc]ity of|[Tt]own of|[Vv]isit(?:ing)?|[Ww]here:|"
    rf"[Hh]ome city|[Aa]rrived (?:at|in)|I'?m in|[Gg]rew up in|[Rr]aised in|[Rr]eturned to|"
    rf"[Ss]tay(?:ing|ed)? in|I am in|[Ww]e are in|[Uu]niversity of)[ \t]+"
    rf"({CAP_WORD}(?:[ \t]+(?:{CAP_WORD}|de|del|la|le|am|an|upon)){{0,3}})"
    rf"|\b(?:in|to|from|near)[ \t]+([{UPPER}]{{5,}}(?:[ \-][{UPPER}]{{2,}})?)\b"
)


def find_cued_places(text: str) -> Iterator[RuleMatch]:
    for match in _PLACE_CUE.finditer(text):
        if match.group(1) is not None and match.group(1) not in _STOP_WORDS:
            yield RuleMatch("LOCATION", match.start(1), match.end(1), 0.6)
        elif match.group(2) is not None:  # "returned to LYCKSELE": an upper-case place name
            yield RuleMatch("LOCATION", match.start(2), match.end(2), 0.5)


_STREETISH = re.compile(rf"(?<!\w)(?:{_STRONG_STREET_SUFFIX}|{_STREET_LEAD}|Apt\.?|Suite)(?!\w)")
_ORGANISATION_WORD = re.compile(
    r"\b(?:Inc|Incorporated|Ltd|LLC|GmbH|Corp|Corporation|Company|Services|Agency|Group|"
    r"Holdings|Technologies|Solutions|Consulting|Partners|Bank|University|Foundation|"
    r"Associates|Labs|Systems|Orchestra)\b"
)


def name_length(value: str) -> int:
    """Length of the name part of `value`: "Ann Lee Suite 9" -> len("Ann Lee")."""
    street = _STREETISH.search(value)
    return len(value) if street is None else len(value[: street.start()].rstrip())


def looks_like_street(value: str) -> bool:
    return _STREETISH.search(value) is not None


def find_postcodes(text: str) -> Iterator[RuleMatch]:
    for match in _POSTCODE.finditer(text):
        if any(ch.isdigit() for ch in match.group()) and _context_before(
            text, match.start(), _POSTCODE_CONTEXT, 25
        ):
            yield RuleMatch("LOCATION", match.start(), match.end(), 0.7)


# --- dates -----------------------------------------------------------------------------------

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp]\.?[Mm]\.?)?)"
_DATE = re.compile(
    rf"\b(?:"
    rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}{_TIME}?"
    rf"|\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}{_TIME}?"
    rf"|(?:{_WEEKDAY},?\s+)?{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|(?:{_WEEKDAY},?\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}}"
    rf"|{_WEEKDAY}"
    rf")\b"
)
_YEAR = re.compile(r"\b(?:1[89]\d\d|20\d\d)s?\b")
_YEAR_CONTEXT = re.compile(
    r"(?i)\b(?:in|since|of|during|from|until|till|by|born|year|founded|established|"
    r"died|before|after|between|and|circa|c\.|early|late|mid|spring|summer|autumn|fall|winter)"
    r"\W{0,3}$"
)
_YEAR_BLOCK_AFTER = re.compile(r"^\s?(?:[%$€£]|kg|km|mg|ml|px|rpm|USD|EUR|dollars|euros|people)")


_AGE_OR_DURATION = re.compile(r"(?i)\b(?:years?|months?|weeks?|days?|old|age|aged)\b")


def is_explicit_date(text: str) -> bool:
    """True for dates a person could be identified by (a day, month or year), False for
    relative expressions and durations ("next week", "8+ years", "the age of 66")."""
    if _DATE.search(text):
        return True
    return bool(_YEAR.search(text)) and not _AGE_OR_DURATION.search(text)


def find_dates(text: str) -> Iterator[RuleMatch]:
    for match in _DATE.finditer(text):
        yield RuleMatch("DATE_TIME", match.start(), match.end(), 0.6)
    for match in _YEAR.finditer(text):
        before = text[max(0, match.start() - 16) : match.start()]
        after = text[match.end() : match.end() + 8]
        if _YEAR_CONTEXT.search(before) and not _YEAR_BLOCK_AFTER.match(after):
            yield RuleMatch("DATE_TIME", match.start(), match.end(), 0.55)


# --- names after strong cues -----------------------------------------------------------------

_PARTICLE = r"(?:van|von|de|da|di|del|der|den|la|le|bin|al)"
_NAME = rf"{CAP_WORD}(?:\s+(?:[{UPPER}]\.|{CAP_WORD}|{_PARTICLE}(?=\s+[{UPPER}]))){{0,3}}"
_NAME_CUE = re.compile(
    rf"(?:\b(?:[Mm]y name is|[Nn]ame is|[Nn]ame:|[Cc]alled|[Nn]amed|[Cc]alls me|[Dd]ear|"
    rf"[Ss]incerely,?|[Rr]egards,?|[Ss]igned|[Dd]irected [Bb]y:?|[Ss]tarring|[Ww]ritten by|"
    rf"[Mm]aiden name is|[Ll]ast name(?: is)?\??|[Ff]irst name(?: is)?\??|[Tt]his is|"
    rf"[Ii]t'?s me,?|[Ii] am|[Ii]'m|[Mm]eet|[Ww]ith|[Aa]sk for|[Cc]ontact|[Aa]ttn:?|"
    rf"[Mm]y (?:kid|son|daughter|wife|husband|friend|partner|boss|colleague|mother|father|"
    rf"brother|sister|grandmother|grandfather|uncle|aunt|cousin|neighbou?r)|"
    rf"[Nn]amed (?:him|her)|[Tt]ell|[Tt]old|[Ss]aid|[Ss]ays|[Ss]houted at|[Aa]sked|[Tt]hanks?,?|"
    rf"['’]s name|[Aa]ssistant to|[Ss]poke (?:to|with)|[Tt]alk(?:ed)? to|"
    rf"(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Madam|Mx)\.?))[ \t]*\n?[ \t]*"
    rf"(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Mx)\.?[ \t]+)?({_NAME})",
    re.MULTILINE,
)
# Words that follow the cues above but are not names.
_NOT_NAMES = frozenset(
    {"I", "The", "A", "An", "It", "This", "That", "Please", "Thank", "Thanks", "Hello", "Hi",
     "Sir", "Madam", "Customer", "Team", "Support", "All", "Everyone", "Mom", "Dad", "God",
     "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Phone",
     "Mobile", "Email", "Address", "Date", "Name", "Website", "Personal", "Where", "When",
     "What", "How", "Why", "Who", "Yes", "No", "Not", "So", "Also", "Just", "Here", "There",
     "Billing", "Fax", "Desk", "Office", "Title", "Action", "Can", "Could", "Would", "We",
     "You", "He", "She", "They", "My", "Our", "Your", "His", "Her", "Their", "And", "But",
     "Or", "If", "In", "On", "At", "To", "For", "From", "Of", "ZIP", "Zip", "Is", "Are",
     "Mr", "Mrs", "Ms", "Dr", "Prof", "User", "Bot", "Assistant", "Answer", "Question", "Q",
     "Agent", "Note", "Notes", "Summary", "Subject", "Re", "Mission", "Statement", "Directed",
     "By", "System", "Human", "AI", "Input", "Output", "Example", "Context", "Task"}
)  # fmt: skip
_LOCATION_PREPOSITION = re.compile(r"(?:\b(?:in|from|near)|\barrived at)\s+$")


def preceded_by_place_preposition(text: str, start: int) -> bool:
    """'in X', 'from X': spaCy's small model often calls unfamiliar places people."""
    return _LOCATION_PREPOSITION.search(text[max(0, start - 14) : start]) is not None


_CONTRACTION = re.compile(r"(?i)['’](?:s|m|re|ve|ll|d|t)\b|n['’]t\b")
_SENTENCE_STARTERS = frozenset(
    {"need", "have", "unlike", "excuse", "maybe", "will", "one", "ask", "follow", "sometimes",
     "may", "can", "could", "would", "should", "please", "bot", "e-mail", "email", "hello",
     "hi", "hey", "thanks", "thank", "what", "who", "why", "how", "where", "when", "yes",
     "no", "ok", "okay", "celebrating", "energetic", "capitalized", "discipline", "let",
     "tell", "give", "send", "show", "help", "call", "find", "get", "make", "is", "are",
     "do", "does", "did", "mr", "mrs", "ms", "dr", "prof", "the", "a", "an", "this", "that",
     "summarize", "summarise", "translate", "explain", "write", "list", "describe", "compare",
     "generate", "create", "fix", "refactor", "rewrite", "convert", "calculate", "draft"}
)  # fmt: skip


def not_a_name(value: str) -> bool:
    """Contractions, company names, digits, URLs and handles are never a person's name."""
    return bool(
        _CONTRACTION.search(value)
        or _ORGANISATION_WORD.search(value)
        or any(ch.isdigit() or ch in "/@:#" for ch in value)
    )


def could_be_name(value: str) -> bool:
    """Cheap veto for NER person spans that are contractions, sentence-opening words,
    company names, or carry digits."""
    words = value.split()
    if not words or not_a_name(value):
        return False
    first = words[0].strip(".,:;!?\"'").lower()
    return first not in _SENTENCE_STARTERS and any(ch.isalpha() for ch in value)


_STRONG_CUE = re.compile(
    r"(?i)name|called|named|calls me|dear|mr|mrs|ms|miss|dr|prof|directed|my [a-z]+ $"
)


_LEADING_TITLE = re.compile(r"(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Mx)\.?[ \t]+)+")


def find_cued_names(text: str) -> Iterator[RuleMatch]:
    for match in _NAME_CUE.finditer(text):
        start, value = match.start(1), match.group(1)
        title = _LEADING_TITLE.match(value)  # "Dear Dr. Ann Lee": the name is "Ann Lee"
        if title is not None:
            start, value = start + title.end(), value[title.end() :]
        words = value.split()
        if not words or words[0].rstrip(".,") in _NOT_NAMES or not_a_name(value):
            continue
        end = start + name_length(value)
        if end <= start:
            continue
        cue = text[match.start() : match.start(1)] + text[match.start(1) : start]
        score = 0.75 if _STRONG_CUE.search(cue) else 0.45
        yield RuleMatch("PERSON", start, end, score)
    for match in _NAME_LINE.finditer(text):
        words = match.group(1).split()
        if (
            len(words) >= 2
            and could_be_name(match.group(1))
            and not any(word.rstrip(".") in _NOT_NAMES for word in words)
        ):
            yield RuleMatch("PERSON", match.start(1), match.end(1), 0.5)


# A person doing something people do, at the start of a sentence or line: "Ann lives at",
# "Ann said", and the speaker of a dialogue line ("Ann: What a day").
_NAME_THEN_VERB = re.compile(
    rf"(?:^|(?<=[.!?\n])[ \t]*|(?<=: )|(?<=\? ))[ \t>]*"
    rf"({CAP_WORD}(?:[ \t]+(?:[{UPPER}]\.|{CAP_WORD})){{0,2}})"
    rf"(?:[ \t]+(?:lives|lived|said|says|told|shouted|spent|had given|was born|is a very|"
    rf"is very|is from|works|worked|married|wrote|asked|replied|grew up|began writing)\b"
    rf"|[ \t]*:[ \t]*[\"“]?(?=[{UPPER}\"“]))",
    re.MULTILINE,
)


def find_acting_names(text: str) -> Iterator[RuleMatch]:
    for match in _NAME_THEN_VERB.finditer(text):
        words = match.group(1).split()
        if not could_be_name(match.group(1)) or any(
            word.rstrip(".") in _NOT_NAMES or word in _STOP_WORDS for word in words
        ):
            continue
        yield RuleMatch("PERSON", match.start(1), match.end(1), 0.6)


_LIST_ITEM = rf"[{LETTER}][{LETTER}'’\-]*(?:[ \t]+[{UPPER}][{LETTER}'’\-]*)?"
_NAME_LIST = re.compile(
    rf"(?<![\w-])({_LIST_ITEM})((?:,[ \t]*{_LIST_ITEM})+),?[ \t]+(?:and|or|&)[ \t]+"
    rf"({_LIST_ITEM})(?![\w-])"
)


def names_in_lists(text: str, person_spans: list[tuple[int, int]]) -> Iterator[RuleMatch]:
    """In "Ann, Bob, Cid and Dee", if two or more items are already known names, the other
    items are names too (the small NER model misses unfamiliar ones)."""
    for match in _NAME_LIST.finditer(text):
        middle = [
            (match.start(2) + m.start(), match.start(2) + m.end())
            for m in re.finditer(_LIST_ITEM, match.group(2))
        ]
        items = [(match.start(1), match.end(1)), *middle, (match.start(3), match.end(3))]
        known = [any(s < pe and ps < e for ps, pe in person_spans) for s, e in items]
        if sum(known) >= 2 and sum(known) * 2 >= len(items):
            for (start, end), is_known in zip(items, known, strict=True):
                if not is_known:
                    yield RuleMatch("PERSON", start, end, 0.5)


# A line holding nothing but two to four capitalised words: the name line of a letterhead,
# signature or address block.
_NAME_LINE = re.compile(
    rf"^[ \t>]*({CAP_WORD}(?:[ \t]+(?:[{UPPER}]\.|{CAP_WORD})){{1,3}})[ \t]*$", re.MULTILINE
)


RuleFinder = Callable[[str], Iterator[RuleMatch]]

RULE_FINDERS: dict[str, RuleFinder] = {
    "secrets": find_secrets,
    "card_numbers": find_card_numbers,
    "ibans": find_ibans,
    "phone_numbers": find_phone_numbers,
    "addresses": find_addresses,
    "postcodes": find_postcodes,
    "cued_addresses": find_cued_addresses,
    "cued_places": find_cued_places,
    "dates": find_dates,
    "cued_names": find_cued_names,
    "acting_names": find_acting_names,
}
