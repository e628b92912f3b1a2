"""The guard's recognizers: spaCy NER filtering, Presidio's pattern recognizers and the rule
finders (`patterns.py`, `addresses.py`, `names.py`, ...). Imported only when the detector is
first built (it pulls in Presidio), never at package import time."""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import tldextract
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    UkNinoRecognizer,
    UsSsnRecognizer,
)

from smallfirst.privacy import addresses, dates, names, patterns, vetoes
from smallfirst.privacy.base64_text import base64_texts
from smallfirst.privacy.fields import find_field_values
from smallfirst.privacy.identifiers import CHECKED_TYPES
from smallfirst.privacy.normalize import normalized
from smallfirst.privacy.place_names import find_shaped_towns, shaped_like_a_town
from smallfirst.privacy.secrets import find_secrets
from smallfirst.privacy.spelled_emails import find_spelled_emails


@functools.lru_cache(maxsize=1)
def offline_tld_extractor() -> tldextract.TLDExtract:
    # The bundled public-suffix snapshot only: no cache directory, no HTTP fetch.
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


# Cyrillic and Greek letters that look like Latin ones (single letters of Unicode's
# confusables.txt): "exаmple.cоm" spelled with a Cyrillic "а" and "о" is example.com to a
# reader, yet no suffix list holds "cоm".
_LATIN_LOOK_ALIKES = str.maketrans(
    # Cyrillic small and capital letters
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0455\u0456\u0458\u04bb\u0501\u051b\u051d\u04cf"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0405\u0406\u0408"
    # Greek small and capital letters
    "\u03b1\u03bf\u03bd\u03c1\u03b9\u03c5"
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
    "aeopcyxsijhdqwlABEKMHOPCTXSIJaovpiuABEZHIKMNOPTYX",
)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled suffix list
    (the stock one calls `tldextract.extract`, which downloads the list on first use). Only
    the domain is checked: given the whole match, tldextract reads "login?email=ann@x.fr" as
    a URL with a query and finds no domain. A domain whose suffix is spelled with look-alike
    letters is read as it looks."""

    def validate_result(self, pattern_text: str) -> bool:
        return known_email_domain(pattern_text.rpartition("@")[2])


def known_email_domain(domain: str) -> bool:
    """Whether `domain` has a known public suffix and a name under it, spelled in Latin
    letters or in look-alikes of them."""
    extract = offline_tld_extractor()
    if extract(domain).fqdn:
        return True
    return not domain.isascii() and bool(extract(domain.translate(_LATIN_LOOK_ALIKES)).fqdn)


# spaCy labels -> guard entity types; every other label (ORG, NORP, CARDINAL, ...) is dropped.
SPACY_LABELS = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
SPACY_SCORE = 0.55  # below the rule recognizers, so an address or a cued name wins overlaps


def _spacy_entities(text: str, doc: Any) -> Iterator[patterns.RuleMatch]:
    """spaCy NER minus its usual misfires on prompts: relative dates and durations are not
    identifying, contractions and verbs at sentence start are not names, countries tagged
    as people are places, and code, products and companies are neither (`vetoes`)."""
    for entity in doc.ents:
        entity_type = SPACY_LABELS.get(entity.label_)
        start, end = entity.start_char, entity.end_char
        if entity_type == "DATE_TIME":
            yield from _dates_by_line(text, start, end)
            continue
        if entity_type == "PERSON":
            entity_type, start, end = _person_or_place(text, start, end)
        if entity_type == "LOCATION" and _country_as_given_name(text, start, end):
            entity_type = "PERSON"  # "received from Chad Smith"
        elif entity_type == "LOCATION" and vetoes.not_a_place(text, start, end):
            continue
        if entity_type is not None:
            yield patterns.RuleMatch(entity_type, start, end, SPACY_SCORE)


_LINE = re.compile(r"[^\n]+")


def _dates_by_line(text: str, start: int, end: int) -> Iterator[patterns.RuleMatch]:
    """The explicit dates of a spaCy DATE span, line by line: a form's "DOB: Feb 03, 1960"
    over "Age: 91" is read as one span "Feb 03, 1960\nAge"."""
    for line in _LINE.finditer(text, start, end):
        if dates.is_explicit_date(line.group()):
            yield patterns.RuleMatch("DATE_TIME", line.start(), line.end(), SPACY_SCORE)


# The rest of a hyphenated word that a lower-case prefix opened ("ex-Zombie"): a description
# before a name, when a name follows it.
_COMPOUND_HEAD = re.compile(r"\S+[ \t]+(?=\S)")


def _person_or_place(text: str, start: int, end: int) -> tuple[str | None, int, int]:
    """What a spaCy PERSON span really is, and where it starts and ends: a place, a person
    (without a verb before it, "Remind Kofi", a possessive "'s" or a trailing "Apt. 5" or
    street name), or nothing (None)."""
    start += names.name_start(text[start:end])
    compound = _COMPOUND_HEAD.match(text, start, end)
    after_prefix = start >= 2 and text[start - 1] == "-" and text[start - 2].islower()
    if compound is not None and after_prefix:  # "ex-Zombie Lundberg", "ex-Marine Ann Lee"
        start = compound.end()
    possessive = patterns.POSSESSIVE_END.search(text, start, end)
    if possessive is not None and possessive.start() > start:
        end = possessive.start()
    end = start + len(text[start:end].rstrip(" \t|"))  # "| Ann Lee |": a table cell's border
    value = text[start:end]
    if (
        _country_pattern().fullmatch(value)
        or shaped_like_a_town(value)
        or addresses.looks_like_street(value)
        # in "from Ann's house" the preposition governs "house", not "Ann"
        or (possessive is None and names.preceded_by_place_preposition(text, start))
    ):
        return "LOCATION", start, end
    if not names.could_be_name(value) or vetoes.names_a_thing(text, start, end):
        return None, start, end
    name_end = prose_cut(text, start, end)
    if name_end is None or (name_end < end and not names.could_be_name(text[start:name_end])):
        return None, start, end  # (the span whole could be one: checked above)
    return "PERSON", start, start + addresses.name_length(text[start:name_end])


# Lower-case words that link the parts of a name beyond the particles: Spanish "y", Portuguese
# and Italian "e", Catalan "i", German "zu"/"vom", Scandinavian "af"/"av", Dutch "'t"/"het"/"te";
# "of" and "the" before a capitalised word ("Peter of Abano", "Catherine the Great").
_NAME_LINK_WORD = re.compile(rf"{names.PARTICLE}|y|e|i|zu|zum|zur|vom|af|av|['’]t|het|te")
_EPITHET_LINK = frozenset({"of", "the"})
_WORD = re.compile(r"\S+")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n])[ \t\"“'‘(>*\-]*$")


def prose_cut(text: str, start: int, end: int) -> int | None:
    """Where the name ends in `text[start:end]`, a span the NER calls a person, when it runs
    into lower-case words that link no name's parts ("Leydimere Oliveira et al.", "John
    drink"). None when one word opening a sentence and more lower-case words are all there is
    ("Por la presente", "Mijn nieuwe adres"): the English model reads words of other languages
    as names. Without a capitalised word before the lower-case ones, `end` as it is: people
    type names in lower case ("send it to david cape"; dropping them lost such names, and
    kept out "la factura del mes" only). A word with a capital after its first letter is a
    name's ("al-Rashid", "d'Souza")."""
    strip = ".,;:!?\"'()“”‘’"
    # (where the word ends, without the marks after it; the word without the marks around it)
    words = [
        (m.start() + len(m.group().rstrip(strip)), m.group().strip(strip))
        for m in _WORD.finditer(text, start, end)
    ]
    for index, (_, word) in enumerate(words):
        if not word or not word[0].islower() or any(ch.isupper() for ch in word):
            continue
        if _NAME_LINK_WORD.fullmatch(word) is not None:
            continue
        after = words[index + 1][1] if index + 1 < len(words) else ""
        if word in _EPITHET_LINK and after[:1].isupper():
            continue
        head = [(word_end, w) for word_end, w in words[:index] if w[:1].isupper()]
        lower_words = sum(1 for _, w in words if w[:1].islower())
        at_sentence_start = _SENTENCE_START.search(text, max(0, start - 8), start) is not None
        if not head:
            return end
        if len(head) == 1 and at_sentence_start and lower_words >= 2:
            return None
        return head[-1][0]
    return end


@functools.lru_cache(maxsize=1)
def _country_pattern() -> re.Pattern[str]:
    # Country and territory names in English, from the phonenumbers data Presidio already
    # depends on: a general gazetteer, available offline.
    from phonenumbers import geocoder
    from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

    countries = {
        geocoder._region_display_name(region, "en")
        for regions in _COUNTRY_CODE_TO_REGION_CODE.values()
        for region in regions
        if region != "001"
    }
    countries |= {"United States of America", "USA", "UK", "Great Britain", "England",
                  "Scotland", "Wales", "Holland", "Czechia", "Türkiye", "Ivory Coast"}  # fmt: skip
    forms = {form for name in countries if name for form in (name, name.upper())}
    return re.compile(rf"(?<!\w){patterns.literal_alternation(forms)}(?!\w)")


_TRAILING_POSTCODE = re.compile(r"[ \t]*,?[ \t]*(?:[A-Z]{1,2}[ \-]?)?\d{3,6}(?:[ \-]\d{2,4})?\b")


# A one-word country before a capitalised word is a given name ("Jordan Davis", "Chad Miller",
# "Georgia Brown"), unless the word goes on a place's or an institution's name ("Jordan
# Valley", "Mexico City", "Kenya Airways"), is no name ("flew to Jordan Monday") or "in" comes
# before ("in Vietnam Tran Hung Dao"; "to" and "from" come before people as often).
_NEXT_CAPITALISED_WORD = re.compile(rf"[ \t]({patterns.CAP_WORD})")
_IN_PLACE_BEFORE = re.compile(r"(?i)\b(?:in|near|at|across|throughout|within)[ \t]+$")
_PLACE_OR_BODY_WORDS = frozenset(
    {"City", "Republic", "Island", "Islands", "River", "Valley", "Sea", "Bay", "Gulf", "Coast",
     "Delta", "Basin", "Canal", "Plain", "Plains", "Lake", "Mountains", "Highlands", "Street",
     "Road", "Avenue", "Square", "Park", "Airways", "Airlines", "Air", "Times", "Post",
     "Herald", "National", "Embassy", "Government", "State", "Tech", "University", "Standard",
     "Time"}
)  # fmt: skip


def _given_name_use(text: str, start: int, end: int) -> bool:
    following = _NEXT_CAPITALISED_WORD.match(text, end)
    if (
        following is None
        or " " in text[start:end]
        or _IN_PLACE_BEFORE.search(text, max(0, start - 12), start) is not None
    ):
        return False
    word = following.group(1)
    return not (word in _PLACE_OR_BODY_WORDS or word.isupper() or not names.plausible_name(word))


def _country_as_given_name(text: str, start: int, end: int) -> bool:
    """A place of two words, a country and a surname: "Chad Smith", "Georgia Brown"."""
    words = text[start:end].split(" ")
    return (
        len(words) == 2
        and _country_pattern().fullmatch(words[0]) is not None
        and _given_name_use(text, start, start + len(words[0]))
    )


def find_countries(text: str) -> Iterator[patterns.RuleMatch]:
    for match in _country_pattern().finditer(text):
        if _given_name_use(text, match.start(), match.end()):
            continue
        postcode = _TRAILING_POSTCODE.match(text, match.end())  # "Uruguay 64677"
        end = postcode.end() if postcode else match.end()
        yield patterns.RuleMatch("LOCATION", match.start(), end, 0.6)


_RULE_ENTITIES: dict[str, frozenset[str]] = {
    "card_numbers": frozenset({"CREDIT_CARD"}),
    "ibans": frozenset({"IBAN_CODE"}),
    "secrets": frozenset({"SECRET"}),
    "phone_numbers": frozenset({"PHONE_NUMBER"}),
    "addresses": frozenset({"LOCATION"}),
    "postcodes": frozenset({"LOCATION"}),
    "cued_addresses": frozenset({"LOCATION"}),
    "cued_places": frozenset({"LOCATION"}),
    "shaped_towns": frozenset({"LOCATION"}),
    "dates": frozenset({"DATE_TIME"}),
    "cued_names": frozenset({"PERSON"}),
    "acting_names": frozenset({"PERSON"}),
    "initialled_names": frozenset({"PERSON"}),
    "lower_case_names": frozenset({"PERSON"}),
    "addressed_names": frozenset({"PERSON"}),
    "verb_objects": frozenset({"PERSON"}),
    "surname_forms": frozenset({"PERSON", "LOCATION"}),
    "field_values": frozenset({"PERSON", "LOCATION"}),
    "countries": frozenset({"LOCATION"}),
    "spelled_emails": frozenset({"EMAIL_ADDRESS"}),
}


def _not_what_it_seems(text: str, match: patterns.RuleMatch) -> bool:
    """A person who is a company or product ("with Tesco plc"), a place that is code or a
    product ("moved to Kubernetes"), a phone number that is a size or a version ("1920x1080",
    "driver 550.54.14"), an IP address or a date that is a version ("version 4.10.2.1")."""
    start, end = match.start, match.end
    if match.entity_type == "PERSON":
        return vetoes.names_a_thing(text, start, end)
    if match.entity_type == "LOCATION":
        return vetoes.not_a_place(text, start, end)
    if match.entity_type == "PHONE_NUMBER":
        return vetoes.not_a_phone(text, start, end)
    if match.entity_type in ("IP_ADDRESS", "DATE_TIME"):
        return vetoes.is_version_number(text, start, end)
    return False


# Characters an address in use holds before its "@" (RFC 5322 allows more, such as "=", "/"
# and "`", which in a prompt belong to the code or URL around it: "cc='ann@example.org",
# "email=ann@example.org", "https://host/users/ann@example.org").
_LOCAL_PART = re.compile(r"[\w.%+\-']*@")
# "postgres://bob:pw@db.example.com": a URL's user and host, not an e-mail address.
_URL_AUTHORITY_BEFORE = re.compile(r"://[^\s/@]*$")


def _email_in_code(text: str, match: patterns.RuleMatch) -> patterns.RuleMatch | None:
    """The e-mail address in Presidio's match, without the code or URL before it; None for
    the user and host of a URL."""
    local = _LOCAL_PART.search(text, match.start, match.end)
    if local is None:
        return match
    start = local.start()
    while text[start] in ".'-+":  # a quote or dot before the name is not part of it
        start += 1
    if text[start] == "@" or _URL_AUTHORITY_BEFORE.search(text, max(0, start - 80), start):
        return None
    return patterns.RuleMatch(match.entity_type, start, match.end, match.score)


# Presidio compiles its patterns with the `regex` module, whose Unicode tables may be newer
# than Python's: in the checks below, its digit or letter is an ASCII one or any other character.
_ANY_DIGIT = r"[0-9\x80-\U0010ffff]"
_ANY_LETTER = r"[A-Za-z\x80-\U0010ffff]"
# Text every match of a Presidio recognizer's patterns contains, tested before running them
# (each of them is tried at every word): a card's first three groups of digits and the start
# of its fourth; the 5 digits every US SSN pattern holds; a digit beside a date's separator;
# an IPv4 address's dotted digits, or IPv6's "::" or eight groups; a NINO's three pairs of
# digits between letters; an e-mail address's "@"; an IBAN's country code and check digits.
_PRESIDIO_NEEDS = {
    "CREDIT_CARD": re.compile(
        rf"[0-9]{_ANY_DIGIT}{{3}}[- ]?{_ANY_DIGIT}{{3,4}}[- ]?{_ANY_DIGIT}{{3,4}}[- ]?"
        rf"{_ANY_DIGIT}{{3}}"
    ),
    "US_SSN": re.compile(r"[0-9]{3}[- .]?[0-9]{2}"),
    "DATE_TIME": re.compile(rf"{_ANY_DIGIT}[-/.]|-{_ANY_DIGIT}"),
    "IP_ADDRESS": re.compile(r"::|[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|(?:[^\s:]{1,4}:){7}[^\s:]"),
    "UK_NINO": re.compile(rf"{_ANY_LETTER} ?[0-9]{{2}} ?[0-9]{{2}} ?[0-9]{{2}} ?{_ANY_LETTER}"),
    "EMAIL_ADDRESS": re.compile("@"),
    "IBAN_CODE": re.compile(r"[A-Z]{2}[0-9]{2}"),
}


# The most a base64 token's finding scores: under the secrets' 0.85 and more.
_BASE64_SCORE = 0.8
# Between the decoded texts read in one pass (`_in_base64`).
_APART = "\n\n"


class RuleSet:
    """Every recognizer except spaCy's NER: Presidio's pattern recognizers (called directly,
    without Presidio's analyzer around them) and smallfirst's rule finders. Stateless, so
    safe to share between threads."""

    def __init__(self, entities: Iterable[str], *, read_base64: bool = True) -> None:
        """`read_base64`: also report base64 tokens whose text holds a checked value."""
        wanted = frozenset(entities)
        self._presidio = [
            recognizer
            for recognizer in (
                CreditCardRecognizer(),
                IbanRecognizer(),
                IpRecognizer(),
                UsSsnRecognizer(),
                UkNinoRecognizer(),
                OfflineEmailRecognizer(),
                DateRecognizer(),
            )
            if wanted.intersection(recognizer.supported_entities)
        ]
        finders: dict[str, patterns.RuleFinder] = {
            "secrets": find_secrets,
            **patterns.RULE_FINDERS,
            **addresses.ADDRESS_FINDERS,
            "dates": dates.find_dates,
            "shaped_towns": find_shaped_towns,
            **names.NAME_FINDERS,
            "field_values": find_field_values,
            "countries": find_countries,
            "spelled_emails": functools.partial(
                find_spelled_emails, known_domain=known_email_domain
            ),
        }
        self._finders = [
            finder for name, finder in finders.items() if wanted & _RULE_ENTITIES[name]
        ]
        self._entities = wanted
        # Decoded text is read for checked values only: the name, place and date rules cost
        # more than the rest together and their findings would be dropped.
        self._in_decoded = (
            RuleSet(wanted & CHECKED_TYPES, read_base64=False)
            if read_base64 and wanted & CHECKED_TYPES
            else None
        )

    @staticmethod
    def spacy_entities(text: str, doc: Any) -> Iterator[patterns.RuleMatch]:
        """The guard's entities among spaCy's (`doc` is the NER output for `text`)."""
        return _spacy_entities(text, doc)

    def find(self, text: str) -> Iterator[patterns.RuleMatch]:
        """The matches in `text`, and base64 tokens holding a checked value (`read_base64`)."""
        for recognizer in self._presidio:
            needs = _PRESIDIO_NEEDS.get(recognizer.supported_entities[0])
            if needs is not None and needs.search(text) is None:
                continue
            for result in recognizer.analyze(text, list(recognizer.supported_entities)):
                match = patterns.RuleMatch(
                    result.entity_type, result.start, result.end, float(result.score)
                )
                found = (
                    _email_in_code(text, match) if match.entity_type == "EMAIL_ADDRESS" else match
                )
                if found is not None and not _not_what_it_seems(text, found):
                    yield found
        for finder in self._finders:
            for match in finder(text):
                if match.entity_type not in self._entities:
                    continue
                if _not_what_it_seems(text, match):
                    continue
                yield match
        if self._in_decoded is not None:
            yield from self._in_base64(text, self._in_decoded)

    def find_secrets(self, text: str) -> Iterator[patterns.RuleMatch]:
        """The secrets in `text` alone (none unless SECRET is one of the entities)."""
        if "SECRET" in self._entities:
            yield from find_secrets(text)

    @staticmethod
    def _in_base64(text: str, rules: RuleSet) -> Iterator[patterns.RuleMatch]:
        """A base64 token whose text holds a value of a checked type, as that value (the
        most confident one). Below every secret's score: a JWT or Basic credentials found
        as a secret stay one secret. The decoded texts are read in one pass, a blank line
        apart (a pass costs ~0.05 ms however short its text; a match across two is neither's)."""
        tokens = list(base64_texts(text))
        if not tokens:
            return
        # where each decoded text starts in the joined one (and where one past the last would)
        starts = list(
            itertools.accumulate((len(decoded) + len(_APART) for *_, decoded in tokens), initial=0)
        )
        view = normalized(_APART.join(decoded for *_, decoded in tokens))
        best: dict[int, patterns.RuleMatch] = {}
        for match in rules.find(view.text):
            start, end = view.original_span(match.start, match.end)
            index = bisect.bisect_right(starts, start) - 1
            if end > starts[index + 1] - len(_APART):  # runs on into the next text
                continue
            if index not in best or match.score > best[index].score:
                best[index] = match
        for index, match in sorted(best.items()):
            start, end, _ = tokens[index]
            yield patterns.RuleMatch(match.entity_type, start, end, min(match.score, _BASE64_SCORE))
