"""Town names by their shape: English place names end in a few old words for a settlement,
a fort, a harbour or a river mouth (Louisville, Pittsburgh, Scarborough, Canterbury,
Manchester, Portsmouth, Newhaven, Lakeside, Yorkshire, Georgetown), as do the towns that
generators build from a given name and such an ending ("Niitabury", "Port Angelamouth").
Surnames rarely end so; -ton, -berg, -field and -land often do ("Newton", "Goldberg",
"Mansfield", "Copeland"), so they are left out."""

from __future__ import annotations

import re
from collections.abc import Iterator

from smallfirst.privacy.patterns import UPPER, RuleMatch

_TOWN_ENDING = r"(?:ville|burgh|borough|bury|chester|mouth|haven|side|shire|town|furt|stad)"
# A direction or a feature may open the name: "North Austinhaven", "Port Angelamouth".
_TOWN_PREFIX = r"(?:(?:North|South|East|West|New|Port|Lake|Fort|Mount)[ \t]+)"
_TOWN_WORD = rf"[{UPPER}][a-zà-ÿā-ž]+{_TOWN_ENDING}"
_TOWN = re.compile(rf"{_TOWN_PREFIX}?{_TOWN_WORD}")
# Where a town is named: after a preposition of place or movement, as a sentence's subject is
# not ("Melville wrote ...").
_SHAPED_TOWN = re.compile(
    rf"\b(?:in|from|to|near|of|around|outside|via)[ \t]+({_TOWN_PREFIX}?{_TOWN_WORD})(?![\w'’\-])"
)


def shaped_like_a_town(value: str) -> bool:
    """True for "Williamsside", "Port Angelamouth", "Katieburgh"."""
    return _TOWN.fullmatch(value) is not None


def find_shaped_towns(text: str) -> Iterator[RuleMatch]:
    for match in _SHAPED_TOWN.finditer(text):
        yield RuleMatch("LOCATION", match.start(1), match.end(1), 0.6)
