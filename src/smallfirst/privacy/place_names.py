"""Town names by their shape: English place names end in a few old words for a settlement,
a fort, a harbour, a river mouth or a view (Louisville, Pittsburgh, Scarborough, Canterbury,
Manchester, Portsmouth, Newhaven, Lakeside, Yorkshire, Georgetown, Clearview), as do the
towns that generators build from a given name and such an ending ("Niitabury",
"Port Angelamouth").
Surnames rarely end so; -ton, -berg, -field and -land often do ("Newton", "Goldberg",
"Mansfield", "Copeland"), so they are left out."""

from __future__ import annotations

import re
from collections.abc import Iterator

from smallfirst.privacy.patterns import UPPER, RuleMatch

_TOWN_ENDING = r"(?:ville|burgh|borough|bury|chester|mouth|haven|side|shire|town|furt|stad|view)"
# A direction or a feature may open the name: "North Austinhaven", "Port Angelamouth".
_TOWN_PREFIX = r"(?:(?:North|South|East|West|New|Port|Lake|Fort|Mount)[ \t]+)"
# English words of those shapes, capitalised in titles ("How to Interview", "Year in Review",
# "From Inside the Box", "Back to Downtown"): no towns.
_WORDS_SHAPED_SO = (
    r"(?:Re|Pre|Inter|Over|Pur|World)view|(?:In|Out|Be|A|Up|Down|Flip|Back|Bed|Off)side"
    r"|(?:Down|Up|Mid)town"
)
_TOWN_WORD = rf"(?!(?:{_WORDS_SHAPED_SO})(?![a-zà-ÿā-ž]))[{UPPER}][a-zà-ÿā-ž]+{_TOWN_ENDING}"
_TOWN = re.compile(rf"{_TOWN_PREFIX}?{_TOWN_WORD}")
# Where a town is named: after a preposition of place or movement, as a sentence's subject is
# not ("Melville wrote ...").
_SHAPED_TOWN = re.compile(
    rf"\b(?:in|from|to|near|of|around|outside|via)[ \t]+({_TOWN_PREFIX}?{_TOWN_WORD})(?![\w'’\-])"
)


# A point of the compass, "New" or "Port" before a given name names a town, never a person
# ("North Jennifer", "New Christopher"), as generators build them.
_PREFIXED_TOWN = re.compile(rf"(?:North|South|East|West|New|Port)[ \t]+[{UPPER}][a-zà-ÿā-ž]+")


def shaped_like_a_town(value: str) -> bool:
    """True for "Williamsside", "Port Angelamouth", "Katieburgh", "North Jennifer"."""
    return _TOWN.fullmatch(value) is not None or _PREFIXED_TOWN.fullmatch(value) is not None


def find_shaped_towns(text: str) -> Iterator[RuleMatch]:
    for match in _SHAPED_TOWN.finditer(text):
        yield RuleMatch("LOCATION", match.start(1), match.end(1), 0.6)
