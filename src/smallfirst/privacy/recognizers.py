"""Presidio recognizers for the guard. Imported only when the analyzer is first built (it
pulls in Presidio), never at package import time."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import tldextract
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
    UkNinoRecognizer,
    UsSsnRecognizer,
)

from smallfirst.privacy import patterns


@lru_cache(maxsize=1)
def offline_tld_extractor() -> tldextract.TLDExtract:
    # The bundled public-suffix snapshot only: no cache directory, no HTTP fetch.
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled suffix list
    (the stock one calls `tldextract.extract`, which downloads the list on first use)."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(offline_tld_extractor()(pattern_text).fqdn)


class RuleRecognizer(EntityRecognizer):
    """Adapts a plain-Python matcher from `patterns.py` to Presidio."""

    def __init__(
        self,
        name: str,
        finder: Callable[[str], Iterator[patterns.RuleMatch]],
        entities: list[str],
    ) -> None:
        self._finder = finder
        self._recognizer_name = f"smallfirst:{name}"
        super().__init__(supported_entities=entities, name=self._recognizer_name)

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            RecognizerResult(
                entity_type=match.entity_type,
                start=match.start,
                end=match.end,
                score=match.score,
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self._recognizer_name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for match in self._finder(text)
            if match.entity_type in entities
        ]


class FilteredSpacyRecognizer(SpacyRecognizer):
    """spaCy NER minus its usual misfires on prompts: relative dates and durations are not
    identifying, contractions and verbs at sentence start are not names, countries tagged
    as people are places."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        kept = []
        for result in super().analyze(text, entities, nlp_artifacts):
            value = text[result.start : result.end]
            if result.entity_type == "DATE_TIME" and not patterns.is_explicit_date(value):
                continue
            if result.entity_type == "PERSON":
                if (
                    _country_pattern().fullmatch(value)
                    or patterns.looks_like_street(value)
                    or patterns.preceded_by_place_preposition(text, result.start)
                ):
                    result.entity_type = "LOCATION"
                elif not patterns.could_be_name(value):
                    continue
                else:  # spaCy runs names into a following "Apt. 5" or street name
                    result.end = result.start + patterns.name_length(value)
            kept.append(result)
        return kept


@lru_cache(maxsize=1)
def _country_pattern() -> re.Pattern[str]:
    # Country and territory names in English, from the phonenumbers data Presidio already
    # depends on: a general gazetteer, available offline.
    from phonenumbers import geocoder
    from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

    names = {
        geocoder._region_display_name(region, "en")
        for regions in _COUNTRY_CODE_TO_REGION_CODE.values()
        for region in regions
        if region != "001"
    }
    names |= {"United States of America", "USA", "UK", "Great Britain", "England", "Scotland",
              "Wales", "Holland", "Czechia", "Türkiye", "Ivory Coast"}  # fmt: skip
    forms = {form for name in names if name for form in (name, name.upper())}
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


_TRAILING_POSTCODE = re.compile(r"[ \t]*,?[ \t]*(?:[A-Z]{1,2}[ \-]?)?\d{3,6}(?:[ \-]\d{2,4})?\b")


def find_countries(text: str) -> Iterator[patterns.RuleMatch]:
    for match in _country_pattern().finditer(text):
        postcode = _TRAILING_POSTCODE.match(text, match.end())  # "Uruguay 64677"
        end = postcode.end() if postcode else match.end()
        yield patterns.RuleMatch("LOCATION", match.start(), end, 0.6)


_RULE_ENTITIES: dict[str, list[str]] = {
    "card_numbers": ["CREDIT_CARD"],
    "ibans": ["IBAN_CODE"],
    "secrets": ["SECRET"],
    "phone_numbers": ["PHONE_NUMBER"],
    "addresses": ["LOCATION"],
    "postcodes": ["LOCATION"],
    "cued_addresses": ["LOCATION"],
    "cued_places": ["LOCATION"],
    "dates": ["DATE_TIME"],
    "cued_names": ["PERSON"],
    "acting_names": ["PERSON"],
}


def build_recognizers() -> list[Any]:
    """Every recognizer except the spaCy NER one, which the analyzer adds itself."""
    recognizers: list[Any] = [
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        UsSsnRecognizer(),
        UkNinoRecognizer(),
        OfflineEmailRecognizer(),
        DateRecognizer(),
    ]
    recognizers.extend(
        RuleRecognizer(name, finder, _RULE_ENTITIES[name])
        for name, finder in patterns.RULE_FINDERS.items()
    )
    recognizers.append(RuleRecognizer("countries", find_countries, ["LOCATION"]))
    return recognizers
