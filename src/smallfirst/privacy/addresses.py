"""Street addresses, places named by the words around them, and postal codes, as rules in
plain Python: how addresses are written in many countries (house numbers, street suffixes and
leading words, units, Japanese blocks, military addresses), never values from a data set.
`recognizers.py` runs them."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator

from smallfirst.privacy.month_names import EUROPEAN_MONTH_ABBREVIATIONS, EUROPEAN_MONTH_NAMES
from smallfirst.privacy.patterns import (
    CAP_WORD,
    LETTER,
    MONTH,
    UPPER,
    WEEKDAY,
    RuleFinder,
    RuleMatch,
    context_before,
    literal_alternation,
    starts_with_phone_line,
)

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
# The rest of USPS Publication 28's street suffixes (Appendix C1, as Faker's en_US addresses
# use them), Australia's (AS 4590 street types) and India's: words of landscape and prose too ("2
# Keys", "3 Falls"), so one names a street only after a house number and a name.
_NAMED_STREET_SUFFIX = (
    r"(?:Approach|Arcade|Bend|Branch|Bridge|Brook|Brooks|Burg|Burgs|Camp|Canyon|Cape|Centers|"
    r"Chase|Circles|Circuit|Cliff|Cliffs|Club|Concourse|Corners|Course|Courts|Cove|Coves|Crest|"
    r"Crossroad|Curve|Dale|Dam|Divide|Drives|Esplanade|Estate|Extension|Extensions|Fall|Falls|"
    r"Ferry|Field|Flat|Flats|Ford|Fords|Forest|Forge|Forges|Fork|Forks|Fort|Garden|Glade|Glen|"
    r"Glens|Greens|Groves|Harbors|Haven|Hollow|Inlet|Islands|Isle|Junctions|Key|Keys|Knoll|"
    r"Knolls|Lake|Lakes|Land|Lights|Loaf|Lock|Locks|Manors|Meadow|Mills|Mount|Mountain|"
    r"Mountains|Neck|Orchard|Parade|Parks|Parkways|Passage|Pine|Plain|Plains|Points|Ports|"
    r"Promenade|Quay|Radial|Rapid|Rapids|Ridges|Rise|River|Roads|Rotary|Rue|Shoal|Shoals|"
    r"Spring|Spurs|Squares|Streets|Tollway|Unions|Valleys|Via|Views|Villages|Walks|Ways|Well|"
    r"Wynd|"
    # more of AS 4590's road types
    r"Alleyway|Broadway|Byway|Circus|Colonnade|Courtyard|Crossway|Cul-de-sac|Driveway|Fairway|"
    r"Footway|Foreshore|Frontage|Grange|Highroad|Laneway|Lookout|Outlook|Parklands|Pathway|"
    r"Quadrant|Reserve|Retreat|Ridgeway|Riverway|Roadway|Strand|Thoroughfare|Towers|Villas|"
    r"Walkway|"
    # Indian street and locality words ("104, Vaidya Nagar", "Dube Ganj", "MG Marg")
    r"Nagar|Ganj|Marg|Chowk|"
    # the rest of AS 4590's road types that headings and prose seldom end on
    r"Amble|Anchorage|Artery|Basin|Brace|Brae|Brow|Centreway|Circlet|Copse|Corso|Cruiseway|"
    r"Dell|Deviation|Distributor|Elbow|Firetrail|Gully|Interchange|Lees|Meander|Mew|Nook|"
    r"Piazza|Plateau|Quadrangle|Quays|Ramble|Riviera|Roadside|Ronde|Rosebowl|Siding|Tarn|"
    r"Tor|Trunkway|Wade)"
)
# AS 4590's road types that are everyday words too ("3 Easy Steps", "the 2 Final Round",
# "Spring Break"): a street after a house number and a name only where the address goes on
# after it, to a town on the same or the next line.
_EVERYDAY_STREET_TYPE = (
    r"(?:Access|Beach|Block|Break|Cross|Cutting|Dip|Edge|End|Entrance|Follow|Formation|Front|"
    r"Gap|Gate|Gates|Ground|Line|Link|Part|Pocket|Quad|Range|Reach|Ride|Ring|Round|Slope|"
    r"Sound|Stairs|Steps|Strip|Subway|Top|Trailer|Triangle|Turn|Vale)"
    rf"(?=[ \t]*,?[ \t]*\n?[ \t]*[{UPPER}])"
)
# Street-name endings from other languages (Finnish -tie/-katu, Swedish -gatan/-vägen, German
# -straße/-weg, Dutch -straat/-laan, Danish -vej/-gade, ...): a word ending so is a street only
# next to a house number ("Mannerheimintie 5"; "Hattie", "Agata" and "Daniela" are names).
_STREET_ENDINGS = (
    "tie", "katu", "kuja", "polku", "gatan", "vägen", "gränd", "väg", "straße", "strasse", "weg",
    "gasse", "platz", "allee", "damm", "ufer", "straat", "laan", "gracht", "plein", "dreef",
    "steeg", "kade", "singel", "vej", "gade", "stræde", "veien", "gata", "utca", "ulica", "cesta",
)  # fmt: skip
_STREET_ENDING = (  # "Hauptstr. 5": no word boundary
    rf"[{UPPER}][{LETTER}]*(?:{literal_alternation(_STREET_ENDINGS)}\b|str\.)"
)
# Dutch streets named after a person keep the particles of the name ("Van der Helststraat",
# "van 't Hoffstraat", "De Ruyterkade"): lower-case "de" alone is also the article before a
# street ("in de Kalverstraat"), so only after "van" or capitalised.
_DUTCH_STREET_PARTICLES = (
    r"(?:(?:[Vv]an(?:[ \t]+(?:der|den|de|het|'t|’t))?|[Tt]e[rn]|De|Den|Het|'t|’t)[ \t]+)"
)
# A German street named after a person or place, its words joined by hyphens
# ("Konrad-Adenauer-Straße", "Lore-Heinrich-Allee"): a street whether or not a number follows.
_HYPHENATED_STREET = (
    rf"{CAP_WORD}-(?:Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee|Ring|Damm|Ufer|Pfad|Steig|"
    rf"Markt|Chaussee)(?![{LETTER}])"
)
# No name ends in "-straße": a German street even without a number ("Stuckistrasse").
_STRASSE = rf"[{UPPER}][{LETTER}]{{2,}}(?:straße|strasse)(?![{LETTER}])"
_UNIT_WORD = r"(?i:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Floor|Fl|Bldg|Building)\b"
# The capitalised words of a street name after a leading word; a unit ("Apt. 5") is not one.
_LEAD_NAME = (
    rf"(?:(?:de|du|des|la|le|les|del|della|delle|dei|di|da|do|dos|das|y|yr)[ \t]+)*"
    rf"(?!{_UNIT_WORD}){CAP_WORD}(?:[ \t]+(?:(?!{_UNIT_WORD}){CAP_WORD}|de|del|da|do|e)){{0,4}}"
)
# Leading words that make a street of the capitalised words after them ("rue de Rivoli").
# They, the weak ones and the street endings are tries (`literal_alternation`), tried at every
# word: no word of a list is followed by what another one is (a blank, or an end of word), so
# at most one can match where one does, in any order.
_LEADING_STREET_WORDS = (
    "ul.", "ulica", "rue", "avenue", "boulevard", "chemin", "impasse", "allée", "quai", "viale",
    "piazza", "corso", "calle", "avenida", "avda.", "av.", "rua", "travessa", "alameda", "praça",
    "estrada", "rodovia", "plaza", "paseo", "carrer", "pasaje", "travesía", "glorieta",
    "callejón", "urbanización", "vicolo", "piazzale", "contrada", "ladeira", "beco", "plac",
    "strada", "odos", "calea", "aleja", "heol", "ffordd", "stryd", "jalan", "jl.", "c/",
    # Brazil's, Spain's and Italy's types of street (Correios' "tipos de logradouro",
    # Spain's INE street types, Italy's "DUG" toponymy)
    "viela", "viaduto", "loteamento", "condomínio", "chácara", "esplanada", "sítio", "favela",
    "rambla", "cañada", "pasadizo", "rotonda", "incrocio", "lungomare",
)  # fmt: skip
_STREET_LEADING = rf"(?i:{literal_alternation(_LEADING_STREET_WORDS)})[ \t]+{_LEAD_NAME}"
# Leading words that are English words too ("via Email", "et al. Smith"): only with a number.
_WEAK_LEADING_STREET_WORDS = (
    "via", "largo", "al.", "av", "place", "cours", "camino", "ronda", "borgo", "parque", "pátio",
    "jardim", "vila", "setor", "recanto", "residencial", "conjunto", "núcleo", "morro", "fazenda",
    "lagoa", "vale", "trevo", "quadra", "trecho", "vereda", "colônia", "distrito", "acceso",
    "cuesta", "vial", "canale", "stretto",
)  # fmt: skip
_STREET_LEADING_WEAK = rf"(?i:{literal_alternation(_WEAK_LEADING_STREET_WORDS)})[ \t]+{_LEAD_NAME}"
# Trailing street words (Hungarian "u."/"utca", Czech "ulice", Latvian "iela", Lithuanian
# "gatvė", Estonian "tänav"/"põik"/"maantee"/"puiestee").
_STREET_TRAILING = (
    rf"{CAP_WORD}(?:[ \t]+{CAP_WORD}){{0,2}}[ \t]+"
    rf"(?:u\.|út|útja|utca|tér|ulice|náměstí|iela|gatvė|gatve|tänav|põik|maantee|puiestee)"
)
_UNIT = (
    # India's "H.No. 217", "Plot No. 12", "Door No 4" before the unit words
    r"(?i:(?:H|House|Plot|Door|Flat|Shop)\.?[ \t]?No\.?|Apt\.?|Apartment|Suite|Ste\.?|Unit|"
    r"Flat|Room|Floor|Fl\.?|Bldg\.?|Building)[ \t]*#?\d+\w*"
    r"(?:/\d{1,6}\b)?"  # Australia's unit and house number: "Unit 3/142 Taylor Street"
)
# A British studio flat ("Studio 4B" over the street): "Studio" and a number name software and
# rooms too ("Visual Studio 2022", "Studio 5 at noon"), so only where a house number or a
# street follows it.
_STUDIO_UNIT = (
    rf"Studio[ \t]+\d{{1,3}}[A-Za-z]?\b"
    rf"(?=[ \t]*[,\n][ \t]*(?:\d|{CAP_WORD}[ \t]+{CAP_WORD})|[ \t]+at[ \t]+\d)"
)
# A Japanese address in Latin letters: block numbers ("3-15-2", "2-chōme-7-1"), a district,
# and a ward, city or town ("Shibuya-ku", "Shinjuku City").
_JAPANESE_BLOCK = (
    rf"\d{{1,4}}(?:-(?:ch[oō]me-)?\d{{1,4}}){{1,3}}[ \t]+{CAP_WORD}(?=,[ \t]*{CAP_WORD}"
    rf"(?:-(?:ku|shi|ch[oō]|machi|gun)\b|[ \t]+(?:City|Ward)\b))"
)
_MILITARY = (
    r"(?i:(?:PSC|CMR|Unit)\s\d{3,5},?\s+Box\s\d{3,5}|(?:USS|USNS|USNV|USCGC)\s[A-Z][a-z]+|"
    r"(?:FPO|APO|DPO)\s(?:AA|AE|AP)\s\d{5})"
)
_HOUSE = r"\d{1,6}[A-Za-z]?(?:[\-/]\d{1,4})?"
# A comma after the house number, as French and Indian addresses write it ("36, rue de la Paix",
# "761, Ahuja Road"); not after a year ("In 2019, Park Avenue ...").
_HOUSE_COMMA = r"(?:(?<!\b1[89]\d\d)(?<!\b20\d\d),)?"
# Suffixes that rarely end a person's or company's name ("Hill", "Park", "Dr" often do; and
# "Court", "Close" end other phrases: "Supreme Court", "Too Close").
_STRONG_STREET_SUFFIX = (
    r"(?:Street|Avenue|Road|Lane|Boulevard|Drive|Place|Square|Terrace|Crescent|Parkway|"
    r"Highway|Turnpike|Expressway|Freeway|Alley|Strasse|Straße|Motorway|Mews|Gardens|"
    r"Plaza|Str\.)"
)
_STREET_LEAD = r"(?:Rua|Rue|Avda\.|Avenida|Calle|Via|Viale|Piazza|Corso|Carrer|Paseo|ul\.|Ulica)"
# Where an address may start: not inside a word, nor inside a word joined by apostrophes or
# hyphens ("O'Neill", "Anglo-Saxon"): "A'A'A'..." or "Aa-Aa-Aa-..." was one capitalised word
# read again from each of its letters after a joining mark (quadratic: 20,000 characters took
# 11-17 s, 80,000 took 130-270 s, QA). A quote or dash after a space may still open one
# ("'12 Baker Street'").
_ADDRESS_START = r"(?<![\w.+])(?<![\w'’\-]['’\-])"
# "31 August 2009", "In 1186", "On October 6", "3 Juillet 1985": dates, not a street name and
# a house number.
_EUROPEAN_MONTH = literal_alternation((*EUROPEAN_MONTH_NAMES, *EUROPEAN_MONTH_ABBREVIATIONS))
_NOT_DATE_WORD = (
    rf"(?!(?:{MONTH}|{WEEKDAY}|In|On|At|By|Of|Since|From|Until|After|Before|During)\b)"
    # abbreviated weekdays: "Mon-Fri 9-17" are opening hours
    r"(?!(?:Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\b)"
    rf"(?!(?i:{_EUROPEAN_MONTH})\.?[ \t]+\d{{4}}\b)"
    # "8 PM on 12/13/23", "5 AM and 19:00": an hour, not a house number and a street name
    r"(?![AaPp]\.?[Mm]\b)"
)
# A month before the number makes a date of the words before a house number: "DOB April 22".
_NOT_MONTH_DAY = rf"(?!{MONTH}\.?[ \t]+\d)"
_ADDRESS_CORE = re.compile(
    rf"{_ADDRESS_START}(?:"
    rf"{_HOUSE}{_HOUSE_COMMA}\s+(?:{_HOUSE}\s+)?(?:{CAP_WORD}\s+){{0,4}}{_STREET_SUFFIX}\b\.?"
    rf"|{_HOUSE}{_HOUSE_COMMA}\s+(?:{CAP_WORD}\s+){{1,4}}{_NAMED_STREET_SUFFIX}\b"
    rf"|{_HOUSE}{_HOUSE_COMMA}[ \t]+(?:{CAP_WORD}[ \t]+){{1,3}}{_EVERYDAY_STREET_TYPE}\b"
    rf"|(?:{_HYPHENATED_STREET}|{_STRASSE})(?:[ \t]+{_HOUSE}\b)?"
    # Hungarian house numbers end with a dot: "Kossuth Lajos utca 12."
    rf"|(?:{_HOUSE}{_HOUSE_COMMA}[ \t]+){{0,2}}(?:{_STREET_LEADING}|{_STREET_TRAILING})"
    rf"(?:,?[ \t]+{_HOUSE}\b\.?)?"
    rf"|{_JAPANESE_BLOCK}"
    rf"|{_HOUSE}[ \t]+(?:{_HOUSE}[ \t]+)?(?:{_STREET_ENDING}|{_STREET_LEADING_WEAK})"
    rf"(?:[ \t]+{_HOUSE}\b)?"
    rf"|(?:{_DUTCH_STREET_PARTICLES}?{_STREET_ENDING}|{_STREET_LEADING_WEAK}),?[ \t]+{_HOUSE}\b"
    rf"|(?:{CAP_WORD}[ \t]+){{1,3}}{_STRONG_STREET_SUFFIX}(?:[ \t]+{_HOUSE}\b)?"
    rf"|{_HOUSE}[ \t]+{_NOT_DATE_WORD}{CAP_WORD}"
    rf"(?:[ \t]+(?:{_NOT_MONTH_DAY}{CAP_WORD}|[a-zà-ÿ]{{1,4}})){{0,3}}"
    rf"[ \t]+\d{{1,4}}[A-Z]?\b(?!['’]?s\b)(?!\.\d)"
    rf"|(?i:the corner of)\s+[^\n?!]{{2,60}}?\s+and\s+{CAP_WORD}(?:\s+{CAP_WORD}){{0,3}}"
    rf"|{_MILITARY}"
    rf"|{_UNIT}"
    rf"|{_STUDIO_UNIT}"
    rf"|P\.?\s?O\.?\s+Box\s+\d+"
    rf")"
)
# A title-case street name followed by a house number ("Pagari 18"): weak on its own. A number
# with a thousands separator is an amount ("EUR 1,200", "USD 2,500,000"), not a house number.
_NAME_NUMBER = re.compile(  # (a house number's digit or a capital first: one test a word)
    rf"{_ADDRESS_START}(?=[\d{UPPER}])(?:{_HOUSE}[ \t]+)?{_NOT_DATE_WORD}"
    rf"{CAP_WORD}(?:[ \t]+{_NOT_MONTH_DAY}{CAP_WORD}){{0,2}}[ \t]+"
    rf"(?!(?:1[89]|20)\d\d\b)\d{{1,4}}\b(?!\.\d)(?![,.]\d{{3}}\b)"
)
_ADDRESS_CONTEXT = re.compile(
    r"(?i)\b(?:address|addresses|live|lives|living|lived|moved|move|moving|street|located|"
    r"ship|shipping|deliver|delivery|send|mail|visit|resides?|apartment|drops? you off|"
    r"billing|taxi|headquarters|office|where)\b"
)
# Pieces that may follow an address core on the same or the next lines: unit, city, state
# code, country, postal code. Lower-case words end the address, as do sentence stops.
# Lower-case words inside place names: "Villafranca del Cid", "Ostrov nad Ohří" (Czech),
# "Velká Bukovina u Děčína", "Begunje na Gorenjskem" (Slovene), "Newcastle upon Tyne".
_PLACE_LINK = (
    r"de|du|des|la|le|del|della|delle|dei|di|da|do|dos|das|van|von|der|den|am|an|bei|u|nad|"
    r"pod|na|pri|upon|sur"
)
# Units as other languages write them: "apto 72", "piso 3", "m. 15" (Polish "mieszkanie").
# "Alameda Duarte Barros, S/N": Portuguese and Spanish "sem/sin número", a house without one.
_NO_NUMBER = r"[Ss]/[Nn]\b"
# A Brazilian CEP written without its hyphen ("29058811 Monteiro / SC"): more digits than a
# house number has.
_CEP = r"\d{5}-?\d{3}\b"
# A US ZIP+4 code ("20565-0943"), which a continuation would otherwise cut at its hyphen.
_ZIP_PLUS_FOUR = r"\d{5}-\d{4}\b"
_FOREIGN_UNIT = r"(?i:apto|dpto|piso|andar|bloco|lok)\.?[ \t]*\d+\w*|m\.[ \t]*\d+\b"
_CONTINUATION = re.compile(
    rf"(?:[ \t]*(?:,|[\-–/](?=[ \t])))?[ \t]*(?:\n[ \t>?*•\-]*)?(?:,[ \t]*)?"
    rf"(?:{_UNIT}|{_FOREIGN_UNIT}|{_ZIP_PLUS_FOUR}|{_CEP}|{_HOUSE}\b|{_NO_NUMBER}|"
    rf"[A-Z0-9]{{2,4}}[ \-]?[0-9][A-Z0-9]{{1,3}}\b|"
    rf"(?:(?:{_PLACE_LINK})\s+)?(?:['’]s-)?{CAP_WORD}\.?(?:\s*\([{UPPER}][^()\n\"“]{{0,29}}\))?)"
)
# A line that opens with a field label ("Address line 2: ...", "City: ...") is a field of
# its own, not the next line of the address above it.
_LABEL_LINE = re.compile(r"[ \t>*\-]*[A-Za-z][A-Za-z \t]{0,24}(?:[ \t]\d{1,2})?:")
# A word on a new line that two lower-case words follow opens a sentence ("VAT no. to
# follow"), not the next line of an address ("Bergen op Zoom", "Frankfurt am Main").
_SENTENCE_GOES_ON = re.compile(r"[ \t]+[a-zß-ÿ]+\.?[ \t]+[a-zß-ÿ]")
_MAX_CONTINUATION = 10
# A stop that is part of the address: "Apt.", "St.", an initial. Looked for in the last few
# characters only (a search of the text up to there made many addresses quadratic: 100,000
# characters of "12 Main St, Springfield. " took 6.7 s).
_ABBREVIATION_END = re.compile(r"(?:Apt|St|Ste|Fl|Bldg|[A-Z])\.$")
_LONGEST_ABBREVIATION = len("Bldg.")
STOP_WORDS = frozenset(
    {"I", "Please", "Thank", "Thanks", "The", "This", "That", "It", "We", "You", "My", "And",
     "But", "Can", "Could", "Would", "Mobile", "Desk", "Fax", "Phone", "Email", "E", "Tel",
     "Office", "Website", "Name", "Date", "When", "Where", "Sincerely", "Regards", "Dear"}
)  # fmt: skip


def _extend_address(text: str, end: int) -> int:
    for _ in range(_MAX_CONTINUATION):
        match = _CONTINUATION.match(text, end)
        if match is None:
            break
        piece = match.group().strip(" \t\n,").rstrip(".")
        if piece in STOP_WORDS or text[match.end() : match.end() + 1] == ":":
            break
        if "\n" in match.group() and (
            starts_with_phone_line(text, match.start())
            or _LABEL_LINE.match(text, text.index("\n", match.start()) + 1) is not None
        ):
            break
        if text.count("\n", end, match.end()) and match.group().lstrip(" \t,").startswith("\n\n"):
            break
        if (
            "\n" in match.group()
            and piece[:1].isalpha()
            and _SENTENCE_GOES_ON.match(text, match.end()) is not None
        ):
            break
        end = match.end()
        if text[end - 1 : end] == "." and not _ABBREVIATION_END.search(
            text, max(0, end - _LONGEST_ABBREVIATION), end
        ):
            end -= 1
    return end


# A text typed all in lower case gives no capitals to find a street name by: there a house
# number of three digits or more, one or two words that are no function words, and a street
# suffix make a street ("235 david cape suite 550"); smaller numbers count things ("12 new
# keys"), and "15000 in its mission" is a number and a phrase.
_FUNCTION_WORD = (
    r"(?:a|an|the|in|on|at|of|to|for|by|and|or|its|his|her|their|our|my|your|with|from|per)"
)
_LOWER_CASE_STREET = re.compile(
    rf"{_ADDRESS_START}\d{{3,6}}[ \t]+(?:(?!{_FUNCTION_WORD}\b)[{LETTER}]+[ \t]+){{1,2}}"
    rf"(?i:{_STREET_SUFFIX}|{_NAMED_STREET_SUFFIX})\b\.?(?:[ \t]+{_UNIT})*"
)


def find_addresses(text: str) -> Iterator[RuleMatch]:
    found: list[RuleMatch] = []
    covered_until = -1
    for match in _ADDRESS_CORE.finditer(text):
        if match.start() < covered_until:
            continue
        end = _extend_address(text, match.end())
        covered_until = end
        found.append(RuleMatch("LOCATION", match.start(), end, 0.7))
    for match in _NAME_NUMBER.finditer(text):
        if match.start() < covered_until:
            continue
        end = _extend_address(text, match.end())
        spans_lines = "\n" in text[match.start() : end] or "," in text[match.end() : end]
        if context_before(text, match.start(), _ADDRESS_CONTEXT) or spans_lines:
            covered_until = end
            found.append(RuleMatch("LOCATION", match.start(), end, 0.6))
    yield from found
    if text.islower():
        yield from _lower_case_streets(text, found)


def _lower_case_streets(text: str, found: list[RuleMatch]) -> Iterator[RuleMatch]:
    """Streets of a lower-case text that no span of `found` reads from their start (one read
    only from its unit on, "suite 550", is such a street)."""
    spans = sorted((f.start, f.end) for f in found)
    starts = [start for start, _ in spans]
    furthest_end = list(itertools.accumulate((end for _, end in spans), max))
    for match in _LOWER_CASE_STREET.finditer(text):
        before = bisect.bisect_right(starts, match.start()) - 1
        if before < 0 or furthest_end[before] <= match.start():
            yield RuleMatch("LOCATION", match.start(), match.end(), 0.6)


# "... lives at 74678 midtvollen 130 st.": after a phrase that announces an address, a number
# starts one, whatever the case of the words that follow; it runs to the end of the clause.
# (The cues start a word: at a word's end they are not tried one by one.)
_ADDRESS_CUE = re.compile(
    r"(?i)\b(?=\w)(?:lives? at|living at|address(?: is)?:?|located at|off at|"
    r"(?:office|home|house|shop|store|restaurant|hotel|apartment|flat|studio|clinic|school|"
    r"station|place) is at|"
    r"ship(?:ped)? (?:it )?to|deliver(?:ed)? (?:it )?to|send (?:it )?to|enter on|return to|"
    r"moved to|live on|lives on)[ \t]+"
    r"(?=\d{2,})(?!\d+(?::\d\d)?\s*(?:am|pm|a\.m|p\.m|o'clock|%|percent|h\b|hours|minutes))"
)
# The clause ends at a stop, or where a new one begins: "and works at the bank" (a joining
# word and a lower-case word: "the corner of Oak and Elm" goes on).
_CLAUSE_JOIN = r",?[ \t]+(?:and|but|or|so|then|because|while|which|who|when)[ \t]+[a-z]"
_CLAUSE = re.compile(
    rf"\d+[A-Za-z]?[ \t][^\n?!;:()\"]{{2,80}}?(?=[.?!;:()\"](?:\s|$)|\n|$|{_CLAUSE_JOIN})"
)


def find_cued_addresses(text: str) -> Iterator[RuleMatch]:
    for cue in _ADDRESS_CUE.finditer(text):
        clause = _CLAUSE.match(text, cue.end())
        if clause is not None and re.search(rf"[{LETTER}]{{3}}", clause.group()):
            yield RuleMatch("LOCATION", clause.start(), _extend_address(text, clause.end()), 0.6)


_POSTCODE_CONTEXT = re.compile(
    r"(?i)\b(?:zip|zipcode|zip code|postcode|postal code|post code|cep|plz|postleitzahl|"
    r"code postal|c[oó]digo postal|codice postale|pincode)\b"
)
_POSTCODE = re.compile(r"\b(?:[A-Z0-9]{2,4}[ \-]?[0-9][A-Z0-9]{1,3}|\d{3,6}(?:[ \-]\d{2,4})?)\b")


_PLACE_CUE = re.compile(
    rf"\b(?=\w)(?:[Ff]lew to|[Ff]ly(?:ing)? to|[Tt]ravel(?:l)?ing to|[Tt]ravel(?:l)?ed to|"
    rf"[Mm]oved to|[Mm]oved here from|[Mm]oving to|[Ll]ives? in|[Ll]iving in|[Bb]orn in|"
    rf"[Bb]ased in|[Ll]ocated in|[Oo]riginally from|[Cc]ity of|[Tt]own of|[Vv]isit(?:ing)?|"
    rf"[Ww]here:|[Hh]ome city|[Aa]rrived (?:at|in)|I'?m in|[Gg]rew up in|[Rr]aised in|"
    rf"[Rr]eturned to|[Ss]tay(?:ing|ed)? in|I am in|[Ww]e are in|[Uu]niversity of)[ \t]+"
    rf"({CAP_WORD}(?:[ \t]+(?:{CAP_WORD}|(?:de|del|la|le|am|an|upon)(?!\w))){{0,3}})"
    rf"|\b(?=\w)(?:in|to|from|near)[ \t]+([{UPPER}]{{5,}}(?:[ \-][{UPPER}]{{2,}})?)\b"
)


def find_cued_places(text: str) -> Iterator[RuleMatch]:
    for match in _PLACE_CUE.finditer(text):
        if match.group(1) is not None and match.group(1) not in STOP_WORDS:
            yield RuleMatch("LOCATION", match.start(1), match.end(1), 0.6)
        elif match.group(2) is not None:  # "returned to LYCKSELE": an upper-case place name
            yield RuleMatch("LOCATION", match.start(2), match.end(2), 0.5)


_STREETISH = re.compile(rf"(?<!\w)(?:{_STRONG_STREET_SUFFIX}|{_STREET_LEAD}|Apt\.?|Suite)(?!\w)")
# Street suffixes of USPS Publication 28 that end no person's name (surnames such as "Hill",
# "Brooks", "Ford", "Wells", "Meadows" or "Pike" are left out): a name the NER reads as a
# person's and that ends so is a street ("Peterson Stravenue", "Paul Fords").
_STREET_NOT_NAME_END = re.compile(
    r"[ \t](?i:Bypass|Canyon|Causeway|Centers|Circles|Cliffs|Corners|Courts|Coves|"
    r"Crossroad|Crossing|Curve|Drives|Esplanade|Estates|Extensions?|Flats|Fords|"
    r"Forks|Glens|Groves|Harbors|Heights|Inlet|Islands|Junctions?|Knolls|"
    r"Lakes|Loop|Manors|Mountains|Overpass|Parkways|Passage|Pines|Plains|Prairie|"
    r"Promenade|Radial|Ramp|Rapids|Ridges|Rotary|Route|Shoals|Skyway|Squares|Stravenue|"
    r"Streets|Throughway|Tollway|Trafficway|Tunnel|Underpass|Unions|Valleys|Viaduct|"
    r"Villages|Vista|Wynd|Alleyway|Laneway|Walkway|Pathway|Roadway|Driveway|Footway|"
    r"Thoroughfare|Ganj|Chowk)$"
)


def name_length(value: str) -> int:
    """Length of the name part of `value`: "Ann Lee Suite 9" -> len("Ann Lee")."""
    street = _STREETISH.search(value)
    return len(value) if street is None else len(value[: street.start()].rstrip())


def looks_like_street(value: str) -> bool:
    return _STREETISH.search(value) is not None or _STREET_NOT_NAME_END.search(value) is not None


# The two-letter codes of USPS Publication 28 (Appendix B): states, the District of Columbia,
# territories and the armed forces' AA/AE/AP.
_US_STATE_CODE = (
    r"(?:A[AEKLPRSZ]|C[AOT]|D[CE]|F[LM]|G[AU]|HI|I[ADLN]|K[SY]|LA|M[ADEHINOPST]|N[CDEHJMVY]|"
    r"O[HKR]|P[ARW]|RI|S[CD]|T[NX]|UT|V[AIT]|W[AIVY])"
)
# "Springfield, IL 62704", "Austin TX 78701-1234": a state code and a ZIP or ZIP+4 code after
# a town, as US addresses end; the ZIP+4 is no phone number.
_STATE_AND_ZIP = re.compile(
    rf"(?:,[ \t]*|(?<!\w)[{UPPER}][a-z]+[ \t]+)({_US_STATE_CODE}[ \t]+\d{{5}}(?:-\d{{4}})?)"
    r"(?![\w\-])"
)
# In a text typed all in lower case, only after a comma ("dallas, tx 75201"; "in 46204").
_LOWER_CASE_STATE_AND_ZIP = re.compile(
    rf",[ \t]*((?i:{_US_STATE_CODE})[ \t]+\d{{5}}(?:-\d{{4}})?)(?![\w\-])"
)


def find_postcodes(text: str) -> Iterator[RuleMatch]:
    for match in _POSTCODE.finditer(text):
        if any(ch.isdigit() for ch in match.group()) and context_before(
            text, match.start(), _POSTCODE_CONTEXT, 25
        ):
            yield RuleMatch("LOCATION", match.start(), match.end(), 0.7)
    state_and_zip = _LOWER_CASE_STATE_AND_ZIP if text.islower() else _STATE_AND_ZIP
    for match in state_and_zip.finditer(text):
        yield RuleMatch("LOCATION", match.start(1), match.end(1), 0.7)


ADDRESS_FINDERS: dict[str, RuleFinder] = {
    "addresses": find_addresses,
    "postcodes": find_postcodes,
    "cued_addresses": find_cued_addresses,
    "cued_places": find_cued_places,
}
