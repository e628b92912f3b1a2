"""How letters and e-mails in English and the languages of Western Europe, Brazil and India open
and close, and the titles before a name there: greetings before the name of the one
addressed ("Hallo Doreen,", "Prezado Sr. Amaral,"), sign-offs before the writer's name
("Mit freundlichen Grüßen\\nHans Müller"), and honorifics ("Dott.ssa", "Dhr.", "Smt."). The
words around a name, never a name: `names.py` skips them and reads the name after them."""

from __future__ import annotations

import re

from smallfirst.privacy.patterns import literal_alternation

# Honorifics beyond English's "Mr"/"Mrs"/"Dr" (`names._HONORIFIC`): Spanish and Portuguese
# (Dra., Dña., Doña, D.ª), Italian (Sig., Sig.ra, Dott., Dott.ssa, Ing., Avv.), Dutch (Dhr.,
# Mevr.), French (Maître) and Indian (Shri, Smt.). Written with or without their dot. "Don"
# is a given name and "Sri" opens "Sri Lanka": left out.
FOREIGN_HONORIFICS = (
    "Dra", "Dña", "Doña", "D.ª", "Dª", "Sig", "Sig.ra", "Sig.na", "Sigra", "Dott", "Dott.ssa",
    "Ing", "Avv", "Dhr", "Mevr", "Maître", "Shri", "Smt",
)  # fmt: skip
FOREIGN_HONORIFIC = literal_alternation(FOREIGN_HONORIFICS)
# Spanish "don"/"doña" as a title, abbreviated "D."/"Dña."/"D.ª": after "Sr."/"Sra." ("Sr. D.
# Luis Gil") or a Spanish greeting ("Estimado D. Gil"); elsewhere "D." is an initial and "Don"
# a given name.
SPANISH_DON = r"(?:D\.ª|Dª|D\.|Dña\.?|Doña|Don)"
SPANISH_GREETING = r"(?i:estimad[oa]|apreciad[oa]|distinguid[oa]|querid[oa])"

# Words that open a letter or greet someone by name, compared in lower case. English's
# "hi"/"hello"/"hey"/"dear" and the words of formal openings in German ("Sehr geehrte",
# "Liebe"), French ("Bonjour", "Cher"), Spanish ("Hola", "Estimado", "Apreciado"), Italian ("Ciao",
# "Gentile"), Dutch ("Beste", "Geachte"), Portuguese ("Olá", "Prezado", "Caro") and Indian
# English ("Respected", "Namaste"). Greeting words that are also given names ("Cara",
# "Salve") are left out.
GREETING_WORDS = frozenset(
    {"hi", "hello", "hey", "hiya", "howdy", "g'day", "g’day", "greetings", "hallo", "moin",
     "servus", "liebe", "lieber", "sehr", "geehrte", "geehrter", "bonjour", "bonsoir",
     "salut", "coucou", "cher", "chère", "chers", "hola", "estimado", "estimada",
     "querido", "querida", "apreciado", "apreciada", "distinguido", "distinguida", "ciao",
     "buongiorno", "buonasera", "gentile", "gentilissimo",
     "gentilissima", "egregio", "egregia", "carissimo", "carissima", "hoi", "beste",
     "geachte", "olá", "oi", "prezado", "prezada", "caro", "respected", "namaste"}
)  # fmt: skip
# The same, as a pattern read case-blind (`(?i:...)`): in lower case only, as each word
# spelled twice ("hello", "Hello") matched a run of greetings in 2^n ways, and "hello " 9,000
# times held the guard for minutes.
GREETING = literal_alternation(GREETING_WORDS)

# Sign-offs of letters and e-mails, which stand alone on the line before the writer's name
# (compared in lower case, without the comma after them).
VALEDICTIONS = frozenset(
    {"sincerely", "yours sincerely", "yours faithfully", "yours truly", "regards",
     "kind regards", "best regards", "warm regards", "warmest regards", "with regards",
     "best wishes", "many thanks", "cheers", "mit freundlichen grüßen",
     "mit freundlichen grüssen", "freundliche grüße", "freundliche grüsse", "viele grüße",
     "viele grüsse", "beste grüße", "beste grüsse", "liebe grüße", "liebe grüsse", "mfg",
     "cordialement", "bien cordialement", "bien à vous", "salutations distinguées",
     "amitiés", "saludos", "un saludo", "saludos cordiales", "atentamente",
     "cordiales saludos", "un abrazo", "cordiali saluti", "distinti saluti", "saluti",
     "un saluto", "met vriendelijke groet", "met vriendelijke groeten",
     "vriendelijke groet", "groeten", "hartelijke groet", "atenciosamente",
     "cumprimentos", "com os melhores cumprimentos", "abraços", "um abraço",
     "saudações"}
)  # fmt: skip
# The same, as a pattern that a name may follow on the next line.
VALEDICTION = literal_alternation(
    {form for phrase in VALEDICTIONS for form in (phrase, phrase.capitalize())}
)


def is_valediction(value: str) -> bool:
    """True for "Cordialement", "Mit freundlichen Grüßen,": a sign-off, not a name."""
    return " ".join(value.strip(" \t,.!").split()).lower() in VALEDICTIONS


# A sign-off and the line break after it, which the NER reads into the name below it
# ("Cordialement,\nSophie Lemonnier").
_VALEDICTION_LINE = re.compile(rf"(?i:{VALEDICTION})[ \t]*[,.!]?[ \t]*\n\s*")


def after_valediction(value: str) -> int:
    """Where the name starts in `value` when a sign-off line opens it, else 0."""
    line = _VALEDICTION_LINE.match(value)
    return 0 if line is None else line.end()
