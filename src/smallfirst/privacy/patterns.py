"""Rule-based PII matchers in plain Python (no Presidio, no spaCy): phone numbers in
international formats, payment cards, IBANs and company legal forms, and what the other rule
modules share (`RuleMatch`, letter classes). Addresses: `addresses.py`, names: `names.py`,
dates: `dates.py`, secrets: `secrets.py`.

Each matcher yields `RuleMatch`es; `recognizers.py` runs them. They are general
formats (how phone numbers, addresses and keys are written), never values from a data set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Latin Extended-A and -B and Latin Extended Additional (Romanian "Ș", pinyin "ǎ", Vietnamese
# "Nguyễn"), Greek, and Cyrillic with the letters of Ukrainian and Serbian ("Ї", "Ђ").
UPPER = r"A-ZÀ-ÖØ-ÞĀ-ɏḀ-ỿΆ-ΏΑ-ΩЀ-ЯѠ-ӿ"
LETTER = r"A-Za-zÀ-ÖØ-öø-ÿĀ-ɏḀ-ỿΆ-ώЀ-ӿ"
CAP_WORD = rf"[{UPPER}][{LETTER}'’\-]*"


WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
MONTH = (  # English month names, capitalised as English writes them
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    entity_type: str
    start: int
    end: int
    score: float


# A possessive ending ("Ann's", "James'"): not part of a name or a place.
POSSESSIVE_END = re.compile(r"['’]s?$")


def context_before(text: str, start: int, words: re.Pattern[str], window: int = 60) -> bool:
    return words.search(text[max(0, start - window) : start]) is not None


def literal_alternation(words: Iterable[str]) -> str:
    """A regex alternation of `words` built as a trie ("Ma(?:li|lta)"): Python's `re` tries
    the branches of a flat alternation one by one at every position, a trie only the branch
    of the next character. At one position the longest word that fits is tried first, as in
    a flat alternation sorted longest first."""
    root: dict[str, dict[str, Any]] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def branch(node: dict[str, dict[str, Any]]) -> str:
        parts = [re.escape(char) + branch(child) for char, child in sorted(node.items()) if char]
        if "" in node:
            parts.append("")  # the word may end here, after the longer words are tried
        return parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"

    return branch(root)


# --- phone numbers ---------------------------------------------------------------------------

# Spaces between digit groups: copied from PDFs and web pages they are often non-breaking
# (U+00A0), figure (U+2007), thin (U+2009) or narrow (U+202F) spaces, or doubled.
SPACE = "[ \u00a0\u2007\u2009\u202f]"
# Dashes as typed, and as word processors and web pages turn them: hyphen, non-breaking
# hyphen, figure/en/em dashes, minus. A slash too, as German and Austrian numbers are written
# ("030/1234567").
_DASHES = "\\-\u2010-\u2015\u2212"
_GROUP_SEPARATOR = re.compile(rf"[./{_DASHES}]")
_GROUP_GAP = rf"(?:{SPACE}{{1,2}}|\t|{_GROUP_SEPARATOR.pattern})"
# After a country code the area or mobile prefix may be one digit: "+33 1 42 68 53 00",
# "+61 4 1234 5678"; so after a one-digit trunk prefix ("1-800-555-0199", "8 (994) 207-1939",
# Faker's "1-###-###-####"). Otherwise a lone digit does not start a number. "00" is the
# international prefix dialled for "+" ("0086 139 1234 5678"), when a gap ends the country code.
# Digits a hyphen joins to a word before them belong to an identifier ("INV-2024-558213",
# "CS-00491823-22"), as those after digits and a separator belong to a longer number.
_PHONE = re.compile(
    rf"(?<![\w+])(?<!\d{SPACE})(?<!\d{SPACE}{{2}})(?<!\d[\t./{_DASHES}])"
    rf"(?<![^\W\d_][{_DASHES}])"
    rf"(?:(?:(?P<international>\+|00(?=[1-9]\d{{0,2}}{_GROUP_GAP}))\d{{1,3}}"
    rf"|\((?P<bracketed>\+)\d{{1,3}}\))"  # "(+44) 7700 900123": the country code bracketed
    rf"{_GROUP_GAP}?(?:\(\d{{1,5}}\){_GROUP_GAP}?\d{{1,8}}|\d{{1,12}})"
    rf"|(?:\d{_GROUP_GAP}?)?\(\d{{1,5}}\){_GROUP_GAP}?\d{{1,8}}|\d{_GROUP_GAP}\d{{3}}(?={_GROUP_GAP}\d)"
    rf"|\d{{2,12}})"
    rf"(?:{_GROUP_GAP}\d{{2,8}}){{0,4}}"
    # an extension: its digits do not count towards the number's 7 to 15
    rf"(?P<extension>[ \t\u00a0]?(?:x|ext\.?|#)[ \t\u00a0]?\d{{1,5}})?"
    rf"(?!{_GROUP_GAP}?\d)(?!\w)"
)
_DATE_LIKE = re.compile(r"^\d{4}[\-./]\d{1,2}[\-./]\d{1,2}$|^\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}$")
_SSN_LIKE = re.compile(r"^\d{3}([- ])\d{2}\1\d{4}$")
# A Brazilian postcode (CEP, "01310-200") or a Portuguese one (CP7, "2377-932"): no numbering
# plan ends a phone number with a group of three after four or five.
_CEP_LIKE = re.compile(r"^\d{4,5}-\d{3}$")
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|phoned|call|calls|called|calling|mobile|mob|cell|tel|telephone|telefon|"
    r"fax|desk|office|number|contact|reach|text|sms|whatsapp|dial|messages?|answering|ring)\b"
    # Chinese, Japanese and Korean words for phone, mobile, call and contact: these scripts
    # put no word edge around them ("我的手机号是...")
    r"|手机|手機|电话|電話|致电|联系|聯繫|聯絡|携帯|連絡|전화|휴대폰|핸드폰|연락"
)
# "license number is 2270-66-1551": the number named just before is some other identifier.
_OTHER_NUMBER_BEFORE = re.compile(
    r"(?i)(?:\b(?:licen[cs]e|passport|account|acct|order|invoice|policy|membership|member|"
    r"customer|employee|tracking|serial|ticket|case|reference|ref|booking|confirmation|"
    r"routing|tax|vat|student|patient)[ \t]*(?:number|no\.?|#|id)?[ \t]*(?:is|:)?"
    # the same in Chinese, Japanese and Korean, as their phone words are read (order, waybill,
    # account, card, member, ID card, passport, invoice number: 订单号, 注文番号, 주문번호)
    r"|(?:订单|訂單|运单|運單|单|單|编|編|账|賬|帐|帳|卡|工|学|學|会员|會員|身份证|身份證|护照|"
    r"護照|发票|發票)[号號](?:码|碼)?[ \t]*[:：]?[ \t]*(?:是|为|為)?"
    r"|(?:注文|会員|口座|伝票|問い合わせ)番号[はが]?[ \t]*[:：]?"
    r"|(?:주문|계좌|회원|송장|운송장|카드)[ \t]?번호[는은]?[ \t]*[:：]?)[ \t]*$"
)
# "... (office)", "... is my mobile", "... was her work number"
_PHONE_CONTEXT_AFTER = re.compile(
    r"(?i)^\W{0,3}(?:(?:is|was)\s+(?:my|our|his|her|their|the)\s+)?"
    r"(?:office|fax|mobile|cell|home|work|phone|number)\b"
)


def _is_short_local_number(value: str) -> bool:
    """Six digits in three groups ("85 99 60"): a local number in several countries' plans,
    a phone only where the text says so (a postcode is one or two groups)."""
    return sum(ch.isdigit() for ch in value) == 6 and len(re.findall(r"\d+", value)) >= 3


# A UK National Insurance number's layout around its six digits ("QQ 12 34 56 C"), whatever
# its letters: Presidio's NINO recognizer leaves out prefixes and suffixes never issued ("ZZ
# 12 34 56 T", as test and sample data write them), so the digits read as a local phone.
_NINO_PREFIX_BEFORE = re.compile(r"(?<![\w])[A-Z]{2}[ \t]?$")
_NINO_SUFFIX_AFTER = re.compile(r"[ \t]?[A-Z](?!\w)")


def _in_nino_layout(text: str, start: int, end: int) -> bool:
    return (
        _NINO_PREFIX_BEFORE.search(text, max(0, start - 3), start) is not None
        and _NINO_SUFFIX_AFTER.match(text, end) is not None
    )


# A phone number's digits, at the least (a short local number aside: `_is_short_local_number`).
_FEWEST_DIGITS = 7


def find_phone_numbers(text: str) -> Iterator[RuleMatch]:
    for match in _PHONE.finditer(text):
        value = match.group()
        number = value[: match.start("extension") - match.start()] if match["extension"] else value
        digits = sum(ch.isdigit() for ch in number)
        grouped = not value.isdigit()
        # "00" is dialled for "+" when a whole number follows it ("0033 12 34" is six digits)
        international = (
            match["international"] == "+"
            or match["bracketed"] is not None
            or (match["international"] == "00" and digits - 2 >= _FEWEST_DIGITS)
        )
        if _is_short_local_number(value):
            if _in_nino_layout(text, match.start(), match.end()):
                continue
            if _has_phone_context(text, match.start(), match.end()):
                # weak: the digits of a national ID ("AB 12 34 56 C") keep their own type
                yield RuleMatch("PHONE_NUMBER", match.start(), match.end(), 0.45)
            continue
        if (
            not _FEWEST_DIGITS <= digits <= 15
            or _DATE_LIKE.match(value)
            or _SSN_LIKE.match(value)
            or _CEP_LIKE.match(value)
        ):
            continue
        if not grouped and not international and digits > 11:
            continue  # a long unbroken digit run is more often an account or card number
        # "+" is written before no other identifier; "00" may pad one ("Invoice 0034 566 7788")
        if not value.lstrip("(").startswith("+") and _OTHER_NUMBER_BEFORE.search(
            text[max(0, match.start() - 40) : match.start()]
        ):
            continue
        has_context = _has_phone_context(text, match.start(), match.end())
        if international or "(" in value or "x" in value:
            score = 0.75
        elif grouped and (digits >= 9 or _GROUP_SEPARATOR.search(value)):
            score = 0.5
        elif grouped:
            score = 0.35
        else:
            score = 0.3
        if has_context:
            score = min(1.0, score + 0.35)
        yield RuleMatch("PHONE_NUMBER", match.start(), match.end(), score)


def _has_phone_context(text: str, start: int, end: int) -> bool:
    return context_before(text, start, _PHONE_CONTEXT, 40) or bool(
        _PHONE_CONTEXT_AFTER.match(text[end : end + 24])
    )


# --- payment card numbers --------------------------------------------------------------------

# Digits with spaces or dashes anywhere, or groups of four to six digits between dots
# ("4242.4242.4242.4242"); not the digits after a decimal point.
_CARD = re.compile(
    rf"(?<![\w\-])(?<!\d\.)"
    rf"(?:\d(?:(?:{SPACE}{{1,2}}|-)?\d){{11,18}}|\d{{4}}(?:\.\d{{4,6}}){{2,3}}(?:\.\d{{1,4}})?)"
    rf"(?![\w\-])(?!\.\d)"
)
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
        if not luhn_valid(digits) or len(set(digits)) < 2:  # "0000 0000 ..." is filler
            continue
        has_context = context_before(text, match.start(), _CARD_CONTEXT, 50)
        if len(digits) >= 13 or has_context:
            yield RuleMatch("CREDIT_CARD", match.start(), match.end(), 0.9 if has_context else 0.6)


# --- IBANs in any letter case (Presidio's recognizer wants upper case) ----------------------

_IBAN = re.compile(
    rf"\b[A-Za-z]{{2}}\d{{2}}(?:(?:{SPACE}{{1,2}})?[A-Za-z0-9]{{4}}){{2,7}}"
    rf"(?:(?:{SPACE}{{1,2}})?[A-Za-z0-9]{{1,3}})?\b"
)


def iban_valid(value: str) -> bool:
    compact = "".join(value.split()).upper()
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return 15 <= len(compact) <= 34 and int(digits) % 97 == 1


# Each country's IBAN length (ISO 13616, SWIFT's IBAN registry). An IBAN of a listed country
# is exactly that long: a word after it is not read into it ("CZ65 ... 5399 today" read as
# "...5399 toda" passed mod 97 once in 97). Other country codes keep the generic 15-34.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def find_ibans(text: str) -> Iterator[RuleMatch]:
    """IBANs whose check digits hold. One of its country's length scores above any card
    match: Presidio's card recognizer scores a Luhn-valid digit run inside it 1.0
    ("de66 3417 6848 7870 6524 70" held a "card"), and the longer span wins a tie."""
    for match in _IBAN.finditer(text):
        start = match.start()
        length = _IBAN_LENGTHS.get(text[start : start + 2].upper())
        if length is not None:
            end = _end_after(text, start, match.end(), length)
            if end is not None and iban_valid(text[start:end]):
                yield RuleMatch("IBAN_CODE", start, end, 1.0)
            continue
        end = _valid_iban_end(text, start, match.end())
        if end is not None:
            yield RuleMatch("IBAN_CODE", start, end, 0.9)


def _end_after(text: str, start: int, end: int, characters: int) -> int | None:
    """Where the run from `start` holds `characters` letters and digits (blanks between
    groups do not count); None if text[start:end] holds fewer."""
    for position in range(start, end):
        if text[position].isalnum():
            characters -= 1
            if not characters:
                return position + 1
    return None


def _valid_iban_end(text: str, start: int, end: int) -> int | None:
    """Where the IBAN of a country without a registered length that starts at `start` ends:
    the match, or, when the match ran on into the next word ("ph11...3681 for the deposit"
    reads "...3681 for" as a last group), the longest shorter run of its characters that is
    a valid IBAN."""
    while end - start >= 15:
        if iban_valid(text[start:end]):
            return end
        end -= 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
    return None


# --- company names ---------------------------------------------------------------------------

# Legal forms of companies ("Acme Corp", "Tesco plc", "Bosch GmbH"), and those of Germany
# (mbH, OHG, GbR), France (SARL), Italy (S.p.A., S.r.l.), Brazil (Ltda., EIRELI) and India
# (Pvt) that no word or initials spell.
_LEGAL_FORM = (
    r"(?:Inc|Incorporated|Ltd|Limited|LLC|LLP|PLC|plc|GmbH|mbH|OHG|GbR|Corp|Corporation|"
    r"S\.A\.R\.L|SARL|S\.p\.A|S\.r\.l|s\.r\.l|Ltda|EIRELI|Pvt)"
)
# Short legal forms ("Siemens AG", "Volvo AB", "Nestlé S.A.", "Johnson & Johnson Co.",
# Spain's "S.L.", "S.Com.", "S.Coop.", "S.A.T.", Brazil's "S/A", the Netherlands' "V.O.F.")
# are also initials ("S.A. Rao") or parts of addresses ("Main St SE"): they mark a company
# only at the end of a name.
_SHORT_LEGAL_FORM = (
    r"(?:AG|KG|SE|S\.?A|S\.?A\.?S|S\.?p\.?A|SPA|S\.?r\.?l|SRL|N\.?V|B\.?V|Pty|Oy|AB|ASA|Co|"
    r"S\.?L\.?U?|S\.?Com|S\.?Coop|S\.?A\.?T|S/A|Lda|V\.?O\.?F|SNC|EURL|ApS|A/S)"
)
# A family firm: "Imbert et Fils", "Rossi e Figli", "Pérez e Hijos", "Müller & Söhne", "Jansen
# en Zonen", "Lemaire & Cie", "Perera & Asociados"; English's "and Sons" is ORGANISATION_WORD's.
_FAMILY_FIRM = (
    r"(?<!\w)(?:e|et|y|und|en|&)[ \t]+(?:[Ff]igli|[Ff]ils|[Hh]ijos|[Hh]ermanos|[Ss]öhne|[Zz]onen|"
    r"[Cc]ie|[Cc]ía|[Aa]sociados|[Aa]ssociati)\b"
)
# Words that head or end company names in other languages ("Grupo Prisa", "Koninklijke Philips").
_FOREIGN_ORGANISATION_WORD = r"(?:Groep|Gruppe|Groupe|Grupo|Gruppo|Koninklijke|Stichting)"
ORGANISATION_WORD = re.compile(
    rf"\b(?:{_LEGAL_FORM}|Company|Services|Agency|Group|Holdings|Technologies|Solutions|"
    rf"Consulting|Partners|Bank|University|Foundation|Associates|Labs|Systems|Orchestra|"
    rf"Enterprises|Industries|Ventures|Sons|Bros|{_FOREIGN_ORGANISATION_WORD})\b"
    rf"|[ \t,]{_SHORT_LEGAL_FORM}\.?$|{_FAMILY_FIRM}"
)
# A legal form or "& Sons" right after a name ("Globex, Inc.", "Tesco plc", "Siemens AG",
# "Thomas and Sons"): the name is a company's.
_COMPANY_SUFFIX = (  # one way to read blanks and a comma: a run of blanks is read once
    rf"[ \t]*(?:,[ \t]*)?(?:{_LEGAL_FORM}(?:\.|(?![\w\-'’]))"
    rf"|{_SHORT_LEGAL_FORM}\.?(?![\w\-'’.])(?![ \t]*[{UPPER}])"
    rf"|(?:and|&)[ \t]+Sons\b|{_FAMILY_FIRM}|[ \t]-[ \t]ME\b)"  # Brazil's "Garcia - ME"
)
COMPANY_SUFFIX_AFTER = re.compile(_COMPANY_SUFFIX)
# The other partners of a firm named after them, the last joined by "and", then its legal form
# or "Group": "Baggio, Orengo e Foà s.r.l." and "Navone, Canova e Accardo Group" are no three
# people. (Without one, "Collis, Hamilton and Reeves" reads as a list of people and stays one;
# a list of people and companies, "Ann Lee, Oracle Corporation", has no "and".)
_PARTNER_JOIN = r"(?:[ \t]*,)?[ \t]+(?:and|&|e|et|y|und|en)[ \t]+"
COMPANY_PARTNERS_AFTER = re.compile(
    rf"(?:[ \t]*,[ \t]+{CAP_WORD}){{0,2}}{_PARTNER_JOIN}{CAP_WORD}"
    rf"(?:{_COMPANY_SUFFIX}|[ \t]+(?:Group|{_FOREIGN_ORGANISATION_WORD})\b)"
)
# Legal forms that no place name holds: the others are also abbreviations in addresses ("SE"
# and "NV" in "Main St SE", "Reno, NV"; "Co." for County in "Co. Cork").
COMPANY_FORM = re.compile(rf"\b(?:{_LEGAL_FORM})\b|{_FAMILY_FIRM}")


def starts_with_phone_line(text: str, position: int) -> bool:
    """Whether the line after the one `position` is on opens with a phone number."""
    line_start = text.index("\n", position) + 1
    line = text[line_start : text.find("\n", line_start) if "\n" in text[line_start:] else None]
    phone = _PHONE.match(line.lstrip(" \t>?*•-"))
    if phone is None or _CEP_LIKE.match(phone.group()):
        return False
    return sum(ch.isdigit() for ch in phone.group()) >= 7 or _is_short_local_number(phone.group())


RuleFinder = Callable[[str], Iterator[RuleMatch]]

# and `addresses.ADDRESS_FINDERS`, `secrets.find_secrets`, `dates.find_dates`, ...
RULE_FINDERS: dict[str, RuleFinder] = {
    "card_numbers": find_card_numbers,
    "ibans": find_ibans,
    "phone_numbers": find_phone_numbers,
}
