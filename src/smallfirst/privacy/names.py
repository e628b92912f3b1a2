"""Rule-based person-name matchers in plain Python: names after strong cues ("my name is",
"Dear", "Mr."; lower-case names after the strongest), names doing what people do ("Ann
said"), people addressed by name ("Ann, can you..."), letterhead name lines, names with a
middle initial, and the other items of a list of names. General language cues, never values
from a data set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from smallfirst.privacy import vetoes
from smallfirst.privacy.addresses import STOP_WORDS, looks_like_street, name_length
from smallfirst.privacy.letter_words import (
    FOREIGN_HONORIFIC,
    GREETING,
    GREETING_WORDS,
    SPANISH_DON,
    SPANISH_GREETING,
    VALEDICTION,
    after_valediction,
    is_valediction,
)
from smallfirst.privacy.patterns import (
    CAP_WORD,
    LETTER,
    ORGANISATION_WORD,
    POSSESSIVE_END,
    UPPER,
    RuleFinder,
    RuleMatch,
    literal_alternation,
)

# Lower-case particles between given names and surnames: "Pieter de Vries", "Rui dos Santos",
# "Ingrid van den Broek", "Fatima bint Khalid", "Juan de la Cruz".
PARTICLE = (
    r"(?:de|da|das|do|dos|di|du|del|della|dei|des|van|von|der|den|ter|ten|le|la|los|las|"
    r"bin|bint|ibn|ben|al|el)"
)
_PARTICLE_WORD = re.compile(PARTICLE)
# Honorifics before a name; "Sir" also addresses strangers ("Dear Sir"), so it is not always one.
_HONORIFIC = (
    rf"(?:Mr|Mrs|Ms|Miss|Dr|Prof|Professor|Mx|Fr|Rev|Sr|Sra|Srta|Mme|Mlle|Herr|Frau|"
    rf"{FOREIGN_HONORIFIC})"
)
_TITLES = rf"(?:(?:Sr|Sra|Srta)\.?[ \t]+{SPANISH_DON}[ \t]+|(?:{_HONORIFIC}|Sir)\.?[ \t]+)"
_NAME = rf"{CAP_WORD}(?:\s+(?:[{UPPER}]\.|{CAP_WORD}|{PARTICLE}(?=\s+[{UPPER}]))){{0,3}}"
# Form fields whose value is a person ("Customer: Efimiya Petrova", "Patient name: Ana Ruiz").
_PERSON_FIELD = (
    rf"(?i:{literal_alternation(vetoes.PERSON_FIELD_LABELS)}|account holder|requested by|"
    r"reported by|approved by|prepared by|submitted by|contact person|next of kin|"
    r"emergency contact|bill to|ship to|sold to|deliver to)(?:[ \t]+(?i:name|full name))?"
)
# (The cues start a word, or are "'s name": at a word's end they are not tried one by one.)
_NAME_CUE = re.compile(
    rf"(?:\b(?=[\w'’])(?:[Mm]y name is|[Nn]ame is|[Nn]ame:|[Cc]alled|[Nn]amed|[Cc]alls me|[Dd]ear|"
    rf"[Ss]incerely,?|[Rr]egards,?|(?:{VALEDICTION}),?[ \t]*(?=\n)|[Ss]igned(?: by)?|"
    rf"[Ii]n the name of|em nome de|"
    rf"au nom de|a nombre de|[Dd]irected [Bb]y:?|[Ss]tarring|[Ww]ritten by|"
    rf"[Mm]aiden name is|[Ll]ast name(?: is)?\??|[Ff]irst name(?: is)?\??|[Tt]his is|"
    rf"[Ii]t'?s me,?|[Ii] am|[Ii]'m|[Mm]eet|[Ww]ith|[Aa]sk for|[Cc]ontact|[Aa]ttn[:.]?|"
    rf"[Mm]y (?:kid|son|daughter|wife|husband|friend|partner|boss|colleague|mother|father|"
    rf"brother|sister|grandmother|grandfather|uncle|aunt|cousin|neighbou?r)|"
    rf"[Nn]amed (?:him|her)|[Tt]ell|[Tt]old|[Ss]aid|[Ss]ays|[Ss]houted at|[Aa]sked|[Tt]hanks?,?|"
    rf"['’]s name|[Aa]ssistant to|(?:[Ff]or )?[Tt]he attention of|[Ss]poke (?:to|with)|"
    rf"[Tt]alk(?:ed)? to|"
    rf"(?:Owner|Author|Reviewer|Approver|{_PERSON_FIELD}):|"
    rf"(?:{_HONORIFIC}|Sir|Madam)\.?))[ \t]*(?:\n[ \t]*)?"  # blanks read one way: once
    rf"{_TITLES}?({_NAME})",
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
     "By", "System", "Human", "AI", "Input", "Output", "Example", "Context", "Task", "Me", "Us",
     "Him", "Them", "Now", "Today", "Tomorrow", "Tonight", "Yesterday", "Meanwhile", "Later",
     "Then", "However", "Recently", "Finally", "Actually", "Apparently", "Unfortunately",
     "Hopefully", "Mum", "Grandma", "Grandpa", "Guest", "Unknown", "Unassigned", "Anonymous",
     "None", "Nobody", "TBD", "Reminder"}
)  # fmt: skip
_LOCATION_PREPOSITION = re.compile(r"(?:\b(?:in|from|near)|\barrived at)\s+$")
# "received from Ann Lee", "a transfer of GBP 120 from Ann Lee": what comes from someone, so
# "from" names the sender, not a place (up to three words may stand between).
_SENT_FROM = re.compile(
    r"(?i)\b(?:received|receive|receives|message|messages|email|e-mail|emails|letter|letters|"
    r"note|call|calls|text|texts|reply|replies|transfer|transfers|payment|payments|gift|gifts|"
    r"invoice|cheque|check|deposit|refund|remittance|wire|request|requests|hear|heard|"
    r"hearing|referral|referred)(?:[ \t]+[^\s.!?;]+){0,3}[ \t]+from[ \t]+$"
)


def preceded_by_place_preposition(text: str, start: int) -> bool:
    """'in X', 'from X': spaCy's small model often calls unfamiliar places people; not
    'received from X' (a sender)."""
    before = text[max(0, start - 60) : start]
    return (
        _LOCATION_PREPOSITION.search(before[-14:]) is not None and _SENT_FROM.search(before) is None
    )


_CONTRACTION = re.compile(r"(?i)['’](?:s|m|re|ve|ll|d|t)\b|n['’]t\b")
_SENTENCE_STARTERS = frozenset(
    {"need", "have", "unlike", "excuse", "maybe", "will", "one", "ask", "follow", "sometimes",
     "may", "can", "could", "would", "should", "please", "bot", "e-mail", "email", "hello",
     "hi", "hey", "thanks", "thank", "what", "who", "why", "how", "where", "when", "yes",
     "no", "ok", "okay", "let",
     "tell", "give", "send", "show", "help", "call", "find", "get", "make", "is", "are",
     "do", "does", "did", "mr", "mrs", "ms", "dr", "prof", "the", "a", "an", "this", "that",
     "summarize", "summarise", "translate", "explain", "write", "list", "describe", "compare",
     "generate", "create", "fix", "refactor", "rewrite", "convert", "calculate", "draft",
     "install", "run", "use", "add", "update", "remove", "delete", "deploy", "build", "open",
     "check", "review", "test", "debug", "implement", "configure", "import", "export",
     "restart", "enable", "disable", "select", "click"}
)  # fmt: skip


def not_a_name(value: str) -> bool:
    """Contractions, companies, roles, products, code, acronyms, digits, URLs and handles
    are never a person's name."""
    return bool(
        _CONTRACTION.search(value)
        or is_valediction(value)
        or ORGANISATION_WORD.search(value)
        or any(ch.isdigit() or ch in "/@:#+" for ch in value)
        or vetoes.not_a_person(value)
    )


def could_be_name(value: str) -> bool:
    """Cheap veto for NER person spans that are contractions, sentence-opening words,
    company names, or carry digits."""
    words = value.split()
    if not words or not_a_name(value):
        return False
    first = words[0].strip(".,:;!?\"'").lower()
    # one letter is an initial ("D." of "Sr. D. Luis"), no name on its own
    return first not in _SENTENCE_STARTERS and sum(ch.isalpha() for ch in value) > 1


def plausible_name(value: str) -> bool:
    """`value` may be a name: could_be_name, and no word of it is a stop word or a word that
    follows name cues without being a name ("Unknown", "TBD", "Phone")."""
    return could_be_name(value) and not any(
        word.rstrip(".,") in _NOT_NAMES or word in STOP_WORDS for word in value.split()
    )


# A sign-off alone on its line is as strong a cue as "Dear": the line below it is the writer's
# name ("Atenciosamente,\nOtávio Prates", which the NER reads as a building).
_STRONG_CUE = re.compile(
    r"(?i)name|called|named|calls me|dear|mr|mrs|ms|miss|dr|prof|directed|my [a-z]+ $"
    rf"|^(?:{VALEDICTION}),?[ \t]*\n"
)


_POSSESSIVE_WORD = re.compile(r"['’]s?(?!\w)")
_LEADING_TITLE = re.compile(rf"{_TITLES}+")


def _cued_name(start: int, value: str) -> tuple[int, int] | None:
    """Where the name is in `value`, found at `start` right after a cue: without a leading
    title or a possessive; None if it is no name."""
    title = _LEADING_TITLE.match(value)  # "Dear Dr. Ann Lee": the name is "Ann Lee"
    if title is not None:
        start, value = start + title.end(), value[title.end() :]
    value = _POSSESSIVE_WORD.split(value, maxsplit=1)[0]  # "I'm Ann's daughter"
    value = value.split("\n", 1)[0]  # a name ends at a line break ("Bill to: Ann Lee\nAcme Ltd")
    words = value.split()
    if not words or words[0].rstrip(".,") in _NOT_NAMES or not_a_name(value):
        return None
    if sum(ch.isalpha() for ch in value) < 2:  # an initial: "Sr. D. Luis" read from "D"
        return None
    end = start + name_length(value)
    return (start, end) if end > start else None


def find_cued_names(text: str) -> Iterator[RuleMatch]:
    for match in _NAME_CUE.finditer(text):
        span = _cued_name(match.start(1), match.group(1))
        if span is None:
            continue
        cue = text[match.start() : span[0]]
        score = 0.75 if _STRONG_CUE.search(cue) else 0.45
        yield RuleMatch("PERSON", span[0], span[1], score)
    for match in _NAME_LINE.finditer(text):
        words = match.group(1).split()
        if (
            len(words) >= 2
            and could_be_name(match.group(1))
            and not any(word.rstrip(".") in _NOT_NAMES for word in words)
        ):
            title = _LEADING_TITLE.match(match.group(1))  # "Doña Elena Ruiz": the name's line
            start = match.start(1) + (0 if title is None else title.end())
            yield RuleMatch("PERSON", start, match.end(1), 0.5)


# People are the objects of these verbs: "we hired Ana", "Remind Kofi", "cc Yuki".
_OBJECT_VERBS = frozenset(
    {"ask", "hire", "hired", "invite", "invited", "remind", "reminded", "introduce",
     "introduced", "interviewed", "met", "notify", "notified", "congratulate", "congratulated",
     "emailed", "e-mailed", "texted", "messaged", "pinged", "phoned", "cc'd", "cc’d",
     "reach out to", "reached out to"}
)  # fmt: skip
# Verbs that are nouns as well: "the call stack", "an email template", "Text Box".
_NOUN_VERBS = frozenset({"call", "email", "e-mail", "text", "message", "ping", "phone", "cc", "dm"})
# Words that open a span of spaCy's "person" without being part of the name ("Remind Kofi").
PERSON_VERBS = _OBJECT_VERBS | _NOUN_VERBS | {"tell", "told", "asked", "called", "meet", "thank"}


_VERB_OBJECT = re.compile(
    rf"(?<![\w\-])(?i:({literal_alternation(_OBJECT_VERBS | _NOUN_VERBS)}))[ \t]+"
    rf"((?:{_HONORIFIC}\.?[ \t]+)?{_NAME})"
)
# What may follow a person who is an object ("Call Ana at 5", "ping Aisha when you can",
# "Email Nguyen the slides"); more of a noun phrase may not ("Call Stack overflow").
_OBJECT_END = re.compile(
    r"['’]|[ \t]*(?:[,;:!?)\n]|\.(?!\w)|$)|[ \t]+(?:at|on|in|to|about|for|and|or|back|before|after|"
    r"when|once|if|whether|re|regarding|with|from|by|tomorrow|today|tonight|later|now|asap|"
    r"soon|again|yet|first|directly|please|too|also|the|a|an|this|that|these|those|my|your|"
    r"our|his|her|their|me|us|him|them|so|because|since|until|instead|here|there)\b"
)
_AND_NAME = re.compile(rf"[ \t]+(?:and|&)[ \t]+({_NAME})")


def find_verb_objects(text: str) -> Iterator[RuleMatch]:
    """A name after a verb done to people, and a second one joined by "and" ("invite Thabo
    and Lerato"). No determiner may precede the verb ("the call Stack"). After a verb that is
    also a noun, or is capitalised as in a title-case heading ("Interview Questions"), the
    name must end where an object ends and be no field label or nominalisation."""
    for match in _VERB_OBJECT.finditer(text):
        if vetoes.follows_determiner(text, match.start()):
            continue
        verb = match.group(1)
        noun_like = verb.lower() in _NOUN_VERBS or verb[0].isupper()
        span = _object_name(text, match.start(2), match.group(2), noun_like)
        if span is None:
            continue
        yield RuleMatch("PERSON", span[0], span[1], 0.45)
        second = _AND_NAME.match(text, span[1])
        if second is not None:
            span = _object_name(text, second.start(1), second.group(1), noun_like)
            if span is not None:
                yield RuleMatch("PERSON", span[0], span[1], 0.45)


def _object_name(text: str, start: int, value: str, noun_like: bool) -> tuple[int, int] | None:
    span = _cued_name(start, value)
    if span is None or not noun_like:
        return span
    if _OBJECT_END.match(text, span[1]) is None or vetoes.is_field_label(text[span[0] : span[1]]):
        return None
    return span


# "al-", "el-" and "d'" are written onto the surname: "Omar al-Rashid", "Giscard d'Estaing".
_ATTACHED_PARTICLE = r"(?:al-|el-|d['’])"
_LINKED_SURNAME = (
    rf"(?:{PARTICLE}[ \t]+){{1,3}}{_ATTACHED_PARTICLE}?{CAP_WORD}|{_ATTACHED_PARTICLE}{CAP_WORD}"
)
# Surnames shaped as no common word is: "O'Neill", "D'Souza", "McGregor", "MacLeod".
_SHAPED_SURNAME = rf"(?:[OD]['’][{UPPER}]|Mc[{UPPER}]|Mac(?!Book)[{UPPER}])[{LETTER}'’\-]*"
_SURNAME_FORM = re.compile(
    rf"(?<![\w'’\-])((?:{CAP_WORD}[ \t]+){{1,2}}"
    rf"(?:(?:{_LINKED_SURNAME})(?:[ \t]+(?:{_LINKED_SURNAME}|{CAP_WORD})){{0,2}}"
    rf"|{_SHAPED_SURNAME}))(?![\w'’\-])"
)
_WORD = re.compile(r"\S+")
_IN_PLACE = re.compile(r"\b(?:in|near)[ \t]+$")


def _opens_no_name(word: str) -> bool:
    """Titles, greetings, function words, adverbs, verbs, contractions and particles before
    a given name ("Dear", "Yesterday", "Tell", "I'm", "Van")."""
    bare = word.rstrip(".,")
    return (
        _CONTRACTION.search(bare) is not None
        or _PARTICLE_WORD.fullmatch(bare.lower()) is not None  # "Van der Waals"
        or bare in _NOT_NAMES
        or bare in STOP_WORDS
        or bare.lower() in _SENTENCE_STARTERS
        or bare.lower() in PERSON_VERBS
    )


def find_surname_forms(text: str) -> Iterator[RuleMatch]:
    """One or two given names and a surname with a particle ("Pieter de Vries", "Maria do
    Carmo da Silva", "Omar al-Rashid") or of a name's shape ("Anne-Marie O'Neill"); a place
    after "in" or "near"."""
    for match in _SURNAME_FORM.finditer(text):
        words = list(_WORD.finditer(match.group(1)))
        given = next(
            (i for i, word in enumerate(words) if word.group()[0].islower()), len(words) - 1
        )
        first = 0
        while first < given and _opens_no_name(words[first].group()):
            first += 1
        last = len(words) - 1
        while last > given and (
            words[last].group().rstrip(".,") in _NOT_NAMES or words[last].group()[0].islower()
        ):
            last -= 1
        if first == given or any(vetoes.opens_a_place_name(w.group()) for w in words[:given]):
            continue
        start, end = match.start(1) + words[first].start(), match.start(1) + words[last].end()
        value = POSSESSIVE_END.sub("", text[start:end])
        if (
            not_a_name(value)
            or any(vetoes.not_a_person(word) for word in value.split())
            or looks_like_street(value)
        ):
            continue
        # After "in" or "near" a place is likelier ("in Villafranca del Cid"); not after
        # "from", which also precedes senders.
        in_place = _IN_PLACE.search(text, max(0, start - 8), start) is not None
        yield RuleMatch("LOCATION" if in_place else "PERSON", start, start + len(value), 0.5)


# Only a hyphen or particles between two pieces of one name that were found apart: "Marie" +
# "Claire Lefèvre" (spaCy splits at the hyphen), "Rui" (after "Dr.") + "dos" + "Santos".
_NAME_GLUE = re.compile(rf"-|[ \t]+(?:{PARTICLE}[ \t]+){{1,3}}")


def joins_name_pieces(text: str, end: int, start: int) -> bool:
    """True if a name ending at `end` and one starting at `start` are pieces of one name."""
    glue = _NAME_GLUE.match(text, end)
    return glue is not None and glue.end() == start


# A person doing something people do, at the start of a sentence or line: "Ann lives at",
# "Ann said", and the speaker of a dialogue line ("Ann: What a day").
_NAME_THEN_VERB = re.compile(
    rf"(?:^|(?<=[.!?\n])|(?<=: )|(?<=\? ))[ \t>]*"
    rf"({CAP_WORD}(?:[ \t]+(?:[{UPPER}]\.|{CAP_WORD})){{0,2}})"
    rf"(?:[ \t]+(?:lives|lived|said|says|told|shouted|spent|had given|was born|is a very|"
    rf"is very|is from|works|worked|married|wrote|asked|replied|grew up|began writing)\b"
    rf"|[ \t]*:[ \t]*[\"“]?(?=[{UPPER}\"“]))",
    re.MULTILINE,
)


def find_acting_names(text: str) -> Iterator[RuleMatch]:
    utterances = _Utterances(text)
    for match in _NAME_THEN_VERB.finditer(text):
        words = match.group(1).split()
        if not could_be_name(match.group(1)) or any(
            word.rstrip(".") in _NOT_NAMES or word in STOP_WORDS for word in words
        ):
            continue
        if match.group().rstrip(' \t"“').endswith(":") and (
            vetoes.is_field_label(match.group(1)) or not utterances.say_something(match.end())
        ):
            continue
        yield RuleMatch("PERSON", match.start(1), match.end(1), 0.6)


_UTTERANCE = re.compile(r"[^.!?;\n]*")
_LOWER_CASE_WORD = re.compile(rf"(?<![{LETTER}])[a-zß-ÿ][{LETTER}'’]+")


class _Utterances:
    """Whether a speaker's line says something: it holds words in lower case ("Ann: What a
    day!"); the value of a form field does not ("Guarantor: Nasser bin Khalid.", "Province:
    ON", "Cover: Ines Moreira"). Each utterance of the text is read once, however many
    speakers open in it: "Ann: Bob: Cid: ..." read each one's to its end (quadratic: 100,000
    characters took 32 s)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._start = self._end = -1  # the utterance read last
        self._last_word = -1  # where its last word in lower case starts (-1: none)

    def say_something(self, start: int) -> bool:
        """Whether the utterance from `start` (just after a speaker's colon) on holds a word
        in lower case other than a particle."""
        if not self._start <= start <= self._end:
            utterance = _UTTERANCE.match(self._text, start)
            self._start, self._end = start, start if utterance is None else utterance.end()
            self._last_word = max(
                (
                    word.start()
                    for word in _LOWER_CASE_WORD.finditer(self._text, start, self._end)
                    if _PARTICLE_WORD.fullmatch(word.group()) is None
                ),
                default=-1,
            )
        return self._last_word >= start


# An item of a list is no connector ("and Cid" is the list's end, not an item of it).
_LIST_ITEM = rf"(?!(?:and|or)\b)[{LETTER}][{LETTER}'’\-]*(?:[ \t]+[{UPPER}][{LETTER}'’\-]*)?"
# A comma list, read whole at once (possessive) and its end after it if it has one: tried from
# each item, a list without an end was read to its end from every one of them (quadratic:
# 100,000 characters of "John Smith, " took 59 s). Its end is group 3.
_NAME_LIST = re.compile(
    rf"(?<![\w-])({_LIST_ITEM})((?:,[ \t]*{_LIST_ITEM})++)"
    rf"(?:,?[ \t]+(?:and|or|&)[ \t]+({_LIST_ITEM})(?![\w-]))?"
)


# Two full names joined by "and": "Jelena Đorđević and Miloš Petrović".
_FULL_NAME_PAIR = re.compile(
    rf"(?<![\w'’\-])({CAP_WORD}[ \t]+{CAP_WORD})[ \t]+(?:and|&)[ \t]+({CAP_WORD}[ \t]+{CAP_WORD})"
    rf"(?![\w'’\-]|[ \t]+[{UPPER}])"
)


def names_in_lists(text: str, person_spans: list[tuple[int, int]]) -> Iterator[RuleMatch]:
    """In "Ann, Bob, Cid and Dee", if two or more items are already known names, the other
    items are names too (the small NER model misses unfamiliar ones); of two full names
    joined by "and", one known name makes a person of the other."""
    for match in _FULL_NAME_PAIR.finditer(text):
        known = [(match.start(i), match.end(i)) in person_spans for i in (1, 2)]
        if known[0] != known[1]:
            other = 2 if known[0] else 1
            value = POSSESSIVE_END.sub("", match.group(other))
            if plausible_name(value) and not any(vetoes.not_a_person(w) for w in value.split()):
                yield RuleMatch("PERSON", match.start(other), match.start(other) + len(value), 0.5)
    for match in _NAME_LIST.finditer(text):
        if match.group(3) is None:  # a list without "and ..." at its end
            continue
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


# "Ann B. Lee", "Ravil G Yefimov": a first name, a middle initial and a surname. "A" and "I"
# are words as well, so they are initials only with a full stop.
_INITIAL = rf"(?:[{UPPER}]\.|(?![AI][ \t])[{UPPER}](?=[ \t]))"
_INITIALLED_NAME = re.compile(
    rf"(?<![\w.'’\-])({CAP_WORD}[ \t]+{_INITIAL}[ \t]+{CAP_WORD})(?![\w'’\-])"
)


def find_initialled_names(text: str) -> Iterator[RuleMatch]:
    for match in _INITIALLED_NAME.finditer(text):
        value = POSSESSIVE_END.sub("", match.group(1))
        first, _, last = value.split()
        if (
            not could_be_name(value)
            or first.lower() in _SALUTATIONS  # "Estimado D. Gil": a greeting and a title
            or any(word in _NOT_NAMES or word in STOP_WORDS for word in (first, last))
        ):
            continue
        if name_length(value) == len(value):  # "Ann B. Street" is an address
            yield RuleMatch("PERSON", match.start(1), match.start(1) + len(value), 0.6)


# All-lower-case chat ("my name is borna jerković"): one or two words after the strongest
# cues, unless they are function words or read as a verb or adverb ("call me back").
_LOWER = "a-zß-öø-ÿā-žƀ-ɏḁ-ỿа-џά-ώ"
_LOWER_WORD = rf"[{_LOWER}][{_LOWER}'’\-]+"
_LOWER_NAME_CUE = re.compile(
    rf"(?i:\b(?=\w)(?:(?:my|his|her|their|your|full|first|last|maiden|middle) name is|my name['’]s|"
    rf"calls? me))[ \t]+({_LOWER_WORD}(?:[ \t]+(?:{PARTICLE}[ \t]+){{0,2}}{_LOWER_WORD})?)"
    rf"(?![\w'’\-])"
)
_NOT_LOWER_NAMES = frozenset(
    {"a", "an", "the", "not", "no", "on", "in", "at", "to", "for", "of", "is", "was", "and",
     "but", "or", "so", "just", "also", "still", "now", "here", "there", "this", "that", "it",
     "my", "your", "his", "her", "their", "our", "back", "later", "again", "anytime",
     "anything", "something", "whatever", "tomorrow", "today", "tonight", "soon", "when",
     "if", "because", "as", "with", "by", "from", "about", "please", "ok", "okay", "right",
     "wrong", "correct", "incorrect", "missing", "different", "same", "too", "very", "mr",
     "mrs", "ms", "dr", "what", "who", "how", "why", "where", "which", "sir", "madam",
     "maybe", "probably", "never", "always", "up", "out", "off", "over", "be", "been",
     "will", "would", "could", "should", "can", "may", "might", "must", "do", "did", "does",
     "have", "has", "had", "i", "me", "we", "you", "they", "he", "she", "us", "them", "asap",
     "crazy", "whenever", "directly", "instead", "sometime", "first", "once", "after",
     "before", "between", "during", "since", "until", "tho", "though", "lol", "pls", "thx"}
)  # fmt: skip


def _lower_name_word(word: str) -> bool:
    return word not in _NOT_LOWER_NAMES and not word.endswith(("ed", "ing", "ly"))


def find_lower_case_names(text: str) -> Iterator[RuleMatch]:
    """One word, or a given name and a surname, perhaps with particles ("maria da silva")."""
    for match in _LOWER_NAME_CUE.finditer(text):
        first, *rest = match.group(1).split()
        if not _lower_name_word(first):
            continue
        end = match.start(1) + len(first)
        if rest and _lower_name_word(rest[-1]) and not _PARTICLE_WORD.fullmatch(rest[-1]):
            end = match.end(1)
        yield RuleMatch("PERSON", match.start(1), end, 0.6)


# Words that open a letter or a reply to someone, read by the NER as part of the name
# ("Dear Georg Nissen,", "Sorry Carter, we could not ...", "Hallo Doreen,").
_SALUTATIONS = GREETING_WORDS | {"dear", "sorry", "congratulations", "congrats", "welcome"}
# A title the NER reads into the name ("Dear Ms Short", "Frau Theobald Neuschäfer"): the name
# starts after it (the title is no part of it, as "Mr." in "Mr. Leiva").
_TITLE_WORD = re.compile(rf"{_HONORIFIC}\.?")
_SPANISH_DON_WORD = re.compile(SPANISH_DON)


def name_start(value: str) -> int:
    """Where the name starts in a span that opens with verbs done to people, salutations or
    lower-case words other than particles ("Remind Kofi", "Dear Georg", "cc Yuki"): at the
    first word that is none of them. 0 if that word is a word that opens sentences (its veto
    stands: "Email Template") or is in lower case ("said hello"). A sign-off line before the
    name is skipped ("Cordialement,\nSophie")."""
    signed = after_valediction(value)
    addressing = False  # a title or greeting was skipped
    for word in _WORD.finditer(value, signed):
        text, lower = word.group(), word.group().lower()
        particle = _PARTICLE_WORD.fullmatch(text) is not None
        if (
            _TITLE_WORD.fullmatch(text) is not None
            or lower in _SALUTATIONS
            or (addressing and _SPANISH_DON_WORD.fullmatch(text) is not None)
        ):
            addressing = True
            continue
        if lower in _SENTENCE_STARTERS:
            return signed
        if lower in PERSON_VERBS or (text[0].islower() and not particle):
            continue
        return word.start() if text[0].isupper() or particle else signed
    # a span of greetings and titles only ("Prezado Dra", "Geachte") holds no name
    return len(value) if addressing else signed


# Someone addressed by name at the start of a sentence: "Ann, can you send me the file?"
_VOCATIVE = re.compile(
    rf"(?:^|(?<=[.!?\n]))[ \t>\"“]*({CAP_WORD}(?:[ \t]+{CAP_WORD})?),[ \t]+"
    rf"(?i:can|could|would|will|do|did|have|are|please)[ \t]+(?i:I|you|we|u)\b",
    re.MULTILINE,
)
# Someone greeted by name: "Hi Efimiya, I'm writing about...", "Hello Tomasz!", "Hey Ngozi".
_GREETED = re.compile(
    rf"(?:^|(?<=[.!?\n]))[ \t>\"“]*"
    # up to three words ("Sehr geehrte", "Hello hello"): a run is not read every way it splits
    rf"(?:{SPANISH_GREETING}[ \t]+{SPANISH_DON}[ \t]+"
    rf"|(?:(?i:{GREETING}|good[ \t]+(?:morning|afternoon|evening))[ \t]+){{1,3}}{_TITLES}?)"
    rf"({CAP_WORD}(?:[ \t]+{CAP_WORD})?)[ \t]*(?:[,!:.]|$)",
    re.MULTILINE,
)
_NOT_ADDRESSEES = frozenset(
    {"ok", "okay", "sorry", "also", "now", "well", "then", "excuse", "pardon", "honestly",
     "seriously", "anyway", "btw", "guys", "folks", "everyone", "friends", "boss", "doctor",
     "doc", "listen", "look", "quick", "question", "first", "second", "finally", "again",
     "wait", "oh", "ah", "um", "hmm", "right", "sure", "great", "cool", "alright", "good",
     "nice", "hey", "hi", "hello", "yes", "no", "and", "but", "so", "or", "thanks", "thank",
     "please", "bot", "assistant", "chatgpt", "computer", "dear", "sir", "madam", "mom",
     "dad", "team", "all", "together", "next", "lastly", "besides", "otherwise", "instead",
     "world", "there", "siri", "google", "cortana", "claude", "gemini", "copilot"}
)  # fmt: skip


def find_addressed_names(text: str) -> Iterator[RuleMatch]:
    for match in (*_VOCATIVE.finditer(text), *_GREETED.finditer(text)):
        value = match.group(1)
        words = value.split()
        if (
            could_be_name(value)
            and words[0].lower() not in _NOT_ADDRESSEES
            and not any(word in _NOT_NAMES or word in STOP_WORDS for word in words)
        ):
            yield RuleMatch("PERSON", match.start(1), match.end(1), 0.5)


# A line holding nothing but two to four capitalised words: the name line of a letterhead,
# signature or address block.
_NAME_LINE = re.compile(
    rf"^[ \t>]*({CAP_WORD}(?:[ \t]+(?:[{UPPER}]\.|{CAP_WORD})){{1,3}})[ \t]*$", re.MULTILINE
)

NAME_FINDERS: dict[str, RuleFinder] = {
    "cued_names": find_cued_names,
    "acting_names": find_acting_names,
    "initialled_names": find_initialled_names,
    "lower_case_names": find_lower_case_names,
    "addressed_names": find_addressed_names,
    "verb_objects": find_verb_objects,
    "surname_forms": find_surname_forms,
}
