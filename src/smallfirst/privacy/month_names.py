"""Month names of German, French, Spanish, Italian, Portuguese and Dutch, for dates written
with them (`dates.py`) and for telling such a date from a street name and a house number
(`addresses.py`)."""

# In lower case, also as written without their accents ("fevrier", "marco").
EUROPEAN_MONTH_NAMES = (
    *("januar", "jänner", "jaenner", "februar", "feber", "märz", "maerz", "april", "mai"),
    *("juni", "juli", "august", "september", "oktober", "november", "dezember"),
    *("janvier", "février", "fevrier", "mars", "avril", "juin", "juillet", "août", "aout"),
    *("septembre", "octobre", "novembre", "décembre", "decembre"),
    *("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre"),
    *("setiembre", "octubre", "noviembre", "diciembre"),
    *("gennaio", "febbraio", "aprile", "maggio", "giugno", "luglio", "settembre", "ottobre"),
    "dicembre",
    *("janeiro", "fevereiro", "março", "marco", "maio", "junho", "julho", "setembro"),
    *("outubro", "novembro", "dezembro"),
    *("januari", "februari", "maart", "mei", "augustus", "december"),
)
# Full names that are also words or names ("Mars", "Mai", "mayo", "Marco", "Julio", "Avril").
AMBIGUOUS_MONTH_NAMES = ("mars", "mai", "mei", "mayo", "marco", "julio", "avril")
# The usual abbreviations ("Okt.", "déc.", "gen.", "mrt."); "set", "out", "ago" and "gen" are
# also English words.
EUROPEAN_MONTH_ABBREVIATIONS = (
    *("jan", "janv", "ene", "gen", "feb", "fev", "fév", "févr", "fevr", "mär", "mar", "mrz"),
    *("mrt", "apr", "avr", "abr", "mag", "mai", "jun", "giu", "jul", "juil", "lug", "aug"),
    *("ago", "sep", "sept", "set", "okt", "oct", "ott", "out", "nov", "dez", "dec", "déc", "dic"),
)
