"""Vetoes: spans that look like a person's name or a place but name code, a product, a
company, a role or a header field, and numbers that look like phone numbers, IP addresses or
dates but are versions, sizes or screen resolutions. They keep everyday developer and business
prompts from being redacted ("Authorization: Bearer ...", "a meeting with Acme Corp", "Hi
Team", "port it to Rust", "driver 550.54.14"). General forms of language and
text, never values from a data set.
"""

from __future__ import annotations

import re

from smallfirst.privacy.addresses import looks_like_street
from smallfirst.privacy.patterns import COMPANY_FORM, COMPANY_PARTNERS_AFTER, COMPANY_SUFFIX_AFTER

# How code is written, never a name or a place: snake_case, calls, assignments, dotted
# paths ("java.lang", "ASP.NET"), "host:port" and "image:tag" ("postgres:16.2"), "std::io"
# and identifiers in camel case ("getUser", "OrderService", "MySQL"). A name's inner capital
# follows at most two small letters ("McDonald", "MacArthur", "DeShawn", "LaToya"), or "Fitz".
_CODE_LIKE = re.compile(
    r"[_={}\[\]]|\w\(|[a-z]{2}\.[a-z]|[A-Z]{2}\.[A-Z]{2}|[A-Za-z]:\d|\w::\w"
    r"|\b[a-z]+[A-Z]|[a-z]{3}(?<!Fitz)[A-Z]|[a-z][A-Z]{2,3}\b"
)
# Programming languages, clouds and developer tools that people name in prompts ("port it to
# Rust", "deploy with Azure"). Those that are also given names or common surnames (Ruby, Julia,
# Ada, Pascal, Swift, Jenkins, Kafka) are left out: the cost of a missed name is higher.
_TECH_NAMES = frozenset(
    {"Python", "Rust", "Golang", "Java", "JavaScript", "TypeScript", "Kotlin", "Scala", "Perl",
     "PHP", "Haskell", "Erlang", "Clojure", "Fortran", "COBOL", "Lua", "Dart", "Flutter",
     "Node", "Deno", "React", "Angular", "Vue", "Svelte", "Django", "Flask", "Rails",
     "Laravel", "Azure", "AWS", "GCP", "Kubernetes", "Docker", "Terraform", "Ansible",
     "GitHub", "GitLab", "Bitbucket", "Jira", "Confluence", "Slack", "Redis", "Postgres",
     "MongoDB", "Elasticsearch", "Kibana", "Grafana", "Prometheus", "Nginx", "Linux",
     "Ubuntu", "Debian", "Windows", "Android", "Excel", "PowerShell", "Bash", "Copilot",
     "ChatGPT", "Heroku", "Vercel", "Netlify", "Cloudflare", "Stripe", "Twilio", "Shopify",
     "Salesforce", "Firebase", "Figma", "Bitcoin", "Ethereum", "Webpack", "Vite", "Flexbox",
     "Helm", "Gradle", "Maven", "Jest", "Tailwind", "Hadoop", "Airflow", "Databricks"}
)  # fmt: skip
# A determiner before a name and a software noun after it make it a product's: "the React
# hooks", "our Jenkins pipeline", "a Python function". Without the determiner the name may be
# a person's, the noun an object: "give Maria API access".
_DETERMINER_BEFORE = re.compile(
    r"(?i:\b(?:the|a|an|our|my|your|their|his|her|its|this|that|these|those))[ \t]+$"
)
_PRODUCT_NOUN_AFTER = re.compile(
    r"[ \t]+(?i:api|apis|sdk|cli|app|apps|library|libraries|package|packages|module|modules|"
    r"crate|crates|plugin|plugins|framework|function|functions|method|methods|script|"
    r"scripts|code|snippet|query|queries|database|cluster|pipeline|pipelines|container|"
    r"containers|hooks?|components?|syntax|compiler|interpreter|runtime|repo|repository|docs|"
    r"documentation|bot|integration|endpoint|programming|program)(?![\w\-])"
)
# A span ending in a role or a group addresses no one by name: "Dear Hiring Manager", "Dear
# Valued Customer", "Admissions Committee", a signature's "Senior Engineer", "Acme Support",
# "Tell Marketing". Compared in lower case. Trades that are also surnames (Baker, Porter,
# Mason) are left out.
_ROLE_NOUNS = frozenset(
    {"team", "teams", "committee", "board", "council", "panel", "department", "dept",
     "staff", "support", "helpdesk", "customer", "customers", "client", "clients",
     "colleague", "colleagues", "member", "members", "manager", "managers", "director",
     "officer", "engineer", "engineers", "developer", "developers", "devs", "analyst",
     "consultant", "specialist", "coordinator", "administrator", "admin", "architect",
     "designer", "recruiter", "representative", "executive", "intern", "scientist",
     "technician", "editor", "applicant", "candidate", "subscriber", "subscribers", "user",
     "users", "readers", "sir", "madam", "folks", "everyone", "marketing",
     "engineering", "finance", "sales", "legal", "hr", "accounting", "operations", "ops",
     "procurement", "compliance", "payroll", "security", "devops", "center", "centre",
     "desk", "hotline", "helpline", "accountant", "attorney", "solicitor", "counsel",
     "paralegal", "secretary", "assistant", "supervisor", "physician", "surgeon",
     "pharmacist", "therapist", "nurse",
     # the parties of a contract or a case ("the Lessee", "Guarantor")
     "lessee", "lessor", "licensee", "licensor", "purchaser", "buyer", "seller", "vendor",
     "borrower", "lender", "guarantor", "grantor", "grantee", "assignor", "employer",
     "employee", "contractor", "executor", "trustee", "beneficiary", "claimant", "defendant",
     "plaintiff", "appellant", "respondent", "party", "parties", "witness"}
)  # fmt: skip
# Departments of a company: "forward it to Ms Reeves in Legal" names no place.
_DEPARTMENTS = frozenset(
    {"marketing", "engineering", "finance", "sales", "legal", "hr", "accounting",
     "operations", "procurement", "compliance", "payroll", "security", "devops", "support",
     "purchasing", "logistics", "it"}
)  # fmt: skip
# A short word in capitals alone is an acronym ("JSON", "AWS", "CTO"), not a name (two
# letters may be a nickname: "AJ", "TJ").
_ACRONYM = re.compile(r"[A-Z]{3,5}s?")


def looks_like_code(value: str) -> bool:
    return _CODE_LIKE.search(value) is not None


def _bare(word: str) -> str:
    return word.strip(".,;:!?\"'()")


def not_a_person(value: str) -> bool:
    """Code, a product, a role or group, or an acronym: what a person span must not be."""
    words = [_bare(word) for word in value.split()]
    return bool(
        looks_like_code(value)
        or (words and (words[0] in _TECH_NAMES or words[-1].lower() in _ROLE_NOUNS))
        or (len(words) == 1 and _ACRONYM.fullmatch(words[0]) is not None)
    )


# Units of data size and frequency after a number ("a 10 GB file", "2.4 GHz"): "GB" is no place.
_UNIT = re.compile(r"[KMGTP]i?B|[KMGT]b|[KMG]Hz")
_NUMBER_BEFORE = re.compile(r"\d[ \t]?$")


def _unit_after_number(text: str, start: int, end: int) -> bool:
    return _UNIT.fullmatch(text, start, end) is not None and bool(
        _NUMBER_BEFORE.search(text, 0, start)
    )


# Upper-case SQL keywords ("... LIMIT 100", "WHERE city = 'Paris' LIMIT 10"): a span holding
# one is a query, not a place. Keywords that are also words of upper-case addresses ("AND",
# "UNION", "SET", "INTO", "TOP", "LEFT") are left out.
_SQL_KEYWORDS = frozenset(
    {"SELECT", "FROM", "WHERE", "LIMIT", "OFFSET", "FETCH", "ORDER", "GROUP", "HAVING", "JOIN",
     "INNER", "OUTER", "INSERT", "VALUES", "UPDATE", "DELETE", "RETURNING", "DISTINCT",
     "BETWEEN", "LIKE", "EXISTS", "VARCHAR", "INTEGER", "BIGINT", "TIMESTAMP", "INTERVAL",
     "ASC", "DESC"}
)  # fmt: skip
# A command-line option right after the span ("docker run -p 5432:5432", "kubectl apply -f"):
# the span is a command.
_OPTION_AFTER = re.compile(r"[ \t]+--?[A-Za-z][\w\-]*(?=[ \t=]|$)")


def not_a_place(text: str, start: int, end: int) -> bool:
    """Code ("get_user(id)", "PostgreSQL", "postgres:16.2"), commands, SQL ("LIMIT 100"),
    departments ("in Legal"), products ("in Python", "React hooks"), companies ("at Globex
    Corporation", but "Corporation Street") and units after a number ("10 GB") are not
    places."""
    value = text[start:end]
    words = value.split()
    return (
        looks_like_code(value)
        or _unit_after_number(text, start, end)
        or (bool(words) and _bare(words[0]) in _TECH_NAMES)
        or any(word in _SQL_KEYWORDS for word in words)
        or (len(words) == 1 and _bare(words[0]).lower() in _DEPARTMENTS)
        or _names_a_product(text, start, end)
        or _OPTION_AFTER.match(text, end) is not None
        or (COMPANY_FORM.search(value) is not None and not looks_like_street(value))
        or COMPANY_PARTNERS_AFTER.match(text, end) is not None
    )


def names_a_thing(text: str, start: int, end: int) -> bool:
    """True if the name at `start:end` is a company's, a product's or a command's: a legal
    form follows ("Tesco plc", "Globex, Inc."), a software noun after a determiner ("the
    React hooks") or a command-line option ("docker run -p ...")."""
    # A field's label is one word: the NER reads a name into the label on the line below it
    # ("Ann Lee\nShip to:", "Maria\nTel: (+49) ..."), and the name is no label.
    label = len(text[start:end].split()) == 1
    return (
        COMPANY_SUFFIX_AFTER.match(text, end) is not None
        or COMPANY_PARTNERS_AFTER.match(text, end) is not None
        or _names_a_product(text, start, end)
        or _OPTION_AFTER.match(text, end) is not None
        or (label and _TO_FIELD_AFTER.match(text, end) is not None)
        or (label and _NUMBER_FIELD_AFTER.match(text, end) is not None)
        or _names_a_discovery(text, start, end)
    )


# A word with a colon or a full stop and then a number is the label of a form field ("Tel.
# +49 30 901820", "Fone: (11) 98765-4321", "Tel: (+49) 030/6563456", "Conta: BR89..."), not a
# name.
_NUMBER_FIELD_AFTER = re.compile(r"(?:\.(?:[ \t]*:)?|[ \t]*:)[ \t]*(?:\(?\+?\d|[A-Z]{2}\d\d)")
# "Bill to:", "Ship to:", "Remit to:": the label of an invoice's address field.
_TO_FIELD_AFTER = re.compile(r"[ \t]+to[ \t]*:")
# Nouns that a discoverer's name qualifies in science, medicine and mathematics: "the Calvin
# cycle", "the Heimlich manoeuvre", "the Mann-Whitney U test", "Dijkstra's algorithm",
# "Murphy's law". After "the" the name is an attribute of the noun; after a possessive only
# nouns that no one owns in everyday speech ("Ann's test results" keeps its name).
_DISCOVERY_NOUNS = (
    r"law|laws|theorem|lemma|conjecture|algorithm|equation|equations|constant|principle|"
    r"paradox|hypothesis|postulate|inequality|syndrome|disease|distribution|transform"
)
_DISCOVERY_AFTER_THE = re.compile(
    rf"(?:-[A-Z][\w'’]*)*(?:[ \t]+[A-Z]\b)?[ \t]+"
    rf"(?:{_DISCOVERY_NOUNS}|cycle|effect|test|manoeuvre|maneuver|boson|scale|sequence)"
    r"(?![\w\-])"
)
_DISCOVERY_AFTER_POSSESSIVE = re.compile(
    rf"['’]s?[ \t]+(?:{_DISCOVERY_NOUNS})(?![\w\-])(?![ \t]+(?:firm|school|office|degree|student))"
)
_THE_BEFORE = re.compile(r"(?i:\bthe)[ \t]+$")


def _names_a_discovery(text: str, start: int, end: int) -> bool:
    """True for the name in "the Krebs cycle" or "Newton's laws": a thing named after
    someone, not the person. A possessive only after one word: things are named after a
    surname, and "Maria Lopez's disease" is hers."""
    one_word = " " not in text[start:end]
    if one_word and _DISCOVERY_AFTER_POSSESSIVE.match(text, end) is not None:
        return True
    return (
        _DISCOVERY_AFTER_THE.match(text, end) is not None
        and _THE_BEFORE.search(text, max(0, start - 5), start) is not None
    )


def _names_a_product(text: str, start: int, end: int) -> bool:
    return _PRODUCT_NOUN_AFTER.match(text, end) is not None and follows_determiner(text, start)


def follows_determiner(text: str, start: int) -> bool:
    """True if a determiner or possessive ends right before `start` ("the ", "our ")."""
    return _DETERMINER_BEFORE.search(text[max(0, start - 8) : start]) is not None


# Words that open place and institution names written with a particle, as people's names
# are ("Rio de Janeiro", "Costa del Sol", "Tour de France", "Universidad de Chile", "Banco do
# Brasil"). Given names that also open place names (Santiago, Vitoria, Mar, Val) are left out.
_PLACE_HEADS = frozenset(
    {"Rio", "Río", "San", "Santa", "Santo", "São", "Saint", "Sainte", "St", "Sint", "Costa",
     "Côte", "Puerto", "Porto", "Port", "Monte", "Mont", "Sierra", "Serra", "Cabo",
     "Cap", "Isla", "Ilha", "Île", "Isola", "Lago", "Lac", "Villa", "Vila", "Ville", "Ciudad",
     "Cidade", "Valle", "Playa", "Praia", "Punta", "Ponta", "Bahía", "Golfo", "Campo",
     "Castel", "Castillo", "Castelo", "Château", "Bois", "Champs", "Pays", "Bad", "Fort",
     "Nueva", "Nuevo", "Nova", "Novo", "Foz", "Torre", "Puente", "Ponte", "Pont", "Plaza",
     "Praça", "Piazza", "Place", "Rue", "Calle", "Avenida", "Paseo", "Universidad",
     "Universidade", "Université", "Universität", "Universiteit", "Università", "Instituto",
     "Institut", "Istituto", "Museo", "Museu", "Musée", "Museum", "Banco", "Banca", "Banque",
     "Hospital", "Hôpital", "Colegio", "Collège", "Escuela", "Escola", "École", "Club",
     "Casa", "Palacio", "Palais", "Palazzo", "Teatro", "Théâtre", "Iglesia", "Igreja",
     "Église", "Catedral", "Cathédrale", "Parque", "Parc", "Jardin", "Jardim", "Estación",
     "Gare", "Aeropuerto", "Aeroporto", "Aéroport", "Ministerio", "Ministère", "Tribunal",
     "Hotel", "Hôtel", "Tour", "Cirque", "Notre", "Mercado", "Marché", "Fundación",
     "Fondation", "Academia", "Académie", "Real", "Gran", "Grand", "Grande"}
)  # fmt: skip


def opens_a_place_name(word: str) -> bool:
    """True for "Rio", "Costa", "Universidad": the head of a place or an institution."""
    return _bare(word) in _PLACE_HEADS


# Labels of fields whose value is a person ("Customer: Efimiya Petrova"): labels, not names.
PERSON_FIELD_LABELS = frozenset(
    {"customer", "client", "patient", "guest", "recipient", "sender", "addressee", "employee",
     "applicant", "tenant", "landlord", "attendee", "attendees", "passenger", "beneficiary",
     "cardholder", "policyholder", "assignee", "requester", "reporter", "spouse", "guardian",
     "contact", "driver", "traveller", "traveler", "payee", "payer", "borrower", "claimant",
     "candidate"}
)  # fmt: skip

# "Authorization: Bearer ...", "Status: Open": the labels of header, log, ticket and form
# fields are written like a dialogue speaker. HTTP (RFC 9110) and e-mail (RFC 5322) header
# names, log levels and the usual fields of tickets and forms; compared in lower case, as
# whole labels or parts of hyphenated ones ("Accept-Language", "Reply-To").
_FIELD_LABELS = frozenset(
    {"accept", "allow", "authorization", "cache", "charset", "connection", "content", "control",
     "cookie", "encoding", "etag", "expect", "expires", "forwarded", "host", "language",
     "length", "modified", "origin", "pragma", "proxy", "range", "referer", "referrer",
     "server", "trailer", "upgrade", "vary", "www", "agent", "user", "from", "to", "cc",
     "bcc", "subject", "sender", "reply", "received", "references", "return", "message", "id",
     "debug", "info", "notice", "warn", "warning", "error", "fatal", "critical", "trace",
     "status", "state", "priority", "severity", "assignee", "reporter", "owner", "author",
     "component", "type", "category", "level", "label", "labels", "tag", "tags", "request",
     "response", "method", "endpoint", "url", "uri", "path", "query", "body", "header",
     "headers", "payload", "result", "source", "target", "details", "comment", "comments",
     "steps", "expected", "actual", "impact", "workaround", "project", "sprint", "epic",
     "milestone", "deadline", "due", "created", "updated", "product", "quantity", "amount",
     "total", "currency", "company", "department", "role", "account", "username", "password",
     "token", "secret", "api", "port", "timestamp", "time", "region", "zone", "country",
     "city", "file", "line", "module", "service", "output", "input", "environment",
     "requirement", "requirements", "context", "feedback", "answer", "question", "hint",
     "tip", "step", "todo", "fixme", "problem", "issue", "bug", "fix", "goal", "rule", "rules",
     "background", "constraints", "update", "traceback", "stacktrace", "name", "re", "fw",
     "fwd"}
) | PERSON_FIELD_LABELS  # fmt: skip
# Nominalisations ("Authorization", "Description", "Version") are not given names.
_NOMINALISATION = re.compile(r"(?i)[a-z]{3}(?:tion|sion)s?$")


def is_field_label(label: str) -> bool:
    """True for "Authorization", "Accept-Language", "X-Request-Id", "Description"."""
    parts = label.lower().split("-")
    return (
        (len(parts) > 1 and parts[0] == "x")  # "X-Request-Id": a non-standard header
        or any(part in _FIELD_LABELS for part in parts)
        or _NOMINALISATION.search(label) is not None
    )


# --- numbers that are no phone number, IP address or date ------------------------------------

# A dotted number right after a version word is a version: "driver 550.54.14", "app version
# 4.10.2.1", "build number is 1.2.3.4", "release-1.2.3.4".
_VERSION_WORD_BEFORE = re.compile(
    r"(?i)\b(?:version|ver|v|release|build|driver|firmware|kernel|bios|patch|revision|rev)"
    r"\.?[ \t\-]*(?:(?:number|no\.?|#)[ \t]*)?(?:(?:is|was|:|=)[ \t]*)?$"
)
_DOTTED_NUMBER = re.compile(r"\d+(?:\.\d+)+")
# A unit or a count right after the number: "1234 5678 9012 ops/sec", "2 147 483 648 bytes".
# Case-sensitive, so that a title or a state after a phone number ("Ms", "MS") is no unit; no
# word a phone number is followed by ("lines are open", "hours").
_UNIT_AFTER = re.compile(
    r"[ \t\u00a0]?(?:%|ops|op/s|req/s|requests|rps|qps|tps|iops|IOPS|[KkMmGgTtPp]i?[Bb]|"
    r"[KMGT]bps|bytes|bits|ms|ns|µs|sec|secs|seconds|px|dpi|fps|[kMG]?Hz|rpm|rows|records|"
    r"items|tokens|words|chars|characters|users|times|units|points|steps|iterations|epochs|"
    r"samples|USD|EUR|GBP|JPY|dollars|euros)(?![A-Za-z])"
)


def is_version_number(text: str, start: int, end: int) -> bool:
    """True for a dotted number right after a version word ("driver 550.54.14")."""
    return _DOTTED_NUMBER.fullmatch(text, start, end) is not None and bool(
        _VERSION_WORD_BEFORE.search(text[max(0, start - 24) : start])
    )


def not_a_phone(text: str, start: int, end: int) -> bool:
    """A measured quantity ("1234 5678 9012 ops/sec") or a version ("driver 550.54.14"); a
    number with a country code is always a phone's. (A screen size, "1920x1080", is no phone
    match at all: an extension's digits do not count towards a phone's seven.)"""
    if text.startswith("+", start):
        return False
    return (
        _UNIT_AFTER.match(text, end) is not None
        or is_version_number(text, start, end)
        or _ISO_DATE.match(text, start) is not None
        or _CODE_PART_AFTER.match(text, end) is not None
    )


# "2024-05-02 18:04" is a timestamp, "8841-2209-A" a part number: neither is a phone's
# ("555-0142-Office" is a phone and its label).
_ISO_DATE = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)")
_CODE_PART_AFTER = re.compile(r"-[A-Z\d]{1,3}(?!\w)")
