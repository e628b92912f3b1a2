"""Secrets in prompts: API keys by their known prefixes, and credentials by what surrounds
them (assignments to a secret-named variable, URL passwords, HTTP Basic credentials, curl's
`-u`, mysql's `-p`, Azure storage account keys, webhook paths). General forms of how keys
and passwords are written, never values from a data set; `recognizers.py` runs
`find_secrets` with the other rule matchers."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator

from smallfirst.privacy.patterns import RuleMatch

_GITLAB_PREFIXES = (
    *("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glft-", "glimt-", "glagent-", "gloas-"),
    *("glrtr-", "glsoat-", "glffct-", "GR1348941"),
)
# Each pattern with the literal text any match contains: a cheap `in` test skips the regex on
# the many prompts that hold no key at all.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], tuple[str, ...], float], ...] = (
    (re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"), ("sk-",), 0.95),
    (
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"),
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
        0.95,
    ),
    (
        re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        0.95,
    ),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"), ("github_pat_",), 0.95),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), ("xox",), 0.95),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"), ("AIza",), 0.9),
    (
        re.compile(r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("_live_", "_test_"),
        0.95,
    ),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), ("hf_",), 0.9),
    (  # GitLab's token prefixes (personal, deploy, trigger, runner, CI job, feed, mail, agent,
        # OAuth, SCIM, feature-flag tokens; runner registration), 20+ characters, and the
        # routable form's ".<version><crc>" tail
        re.compile(
            r"\b(?:gl(?:pat|dt|ptt|rtr?|cbt|ft|imt|agent|oas|soat|ffct)-|GR1348941)"
            r"[A-Za-z0-9_\-]{20,}(?:\.[0-9a-z]{9}\b)?"
        ),
        _GITLAB_PREFIXES,
        0.95,
    ),
    (re.compile(r"\bnpm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"), ("npm_",), 0.95),
    (  # a PyPI API token is a macaroon whose base64 opens with its location, pypi.org or
        # test.pypi.org
        re.compile(r"\bpypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,}"),
        ("pypi-Ag",),
        0.95,
    ),
    (
        re.compile(r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}(?![A-Za-z0-9_\-])"),
        ("SG.",),
        0.95,
    ),
    # Twilio's API key SID: "SK" and 32 lower-case hex digits. S and K are no hex digits, so a
    # hash is never one; the SID is the user half of the key, sent with the secret.
    (re.compile(r"\bSK[0-9a-f]{32}\b"), ("SK",), 0.85),
    (re.compile(r"\bshp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}\b"), ("shp",), 0.95),
    (re.compile(r"\bdckr_(?:pat|oat)_[A-Za-z0-9_\-]{24,}"), ("dckr_",), 0.95),
    (re.compile(r"\bdo[opr]_v1_[0-9a-f]{64}\b"), ("_v1_",), 0.95),
    (re.compile(r"\bxapp-\d-[A-Za-z0-9\-]{20,}"), ("xapp-",), 0.95),
    (  # HashiCorp Vault 1.10+ service, batch and recovery tokens (base62: a digit somewhere)
        re.compile(r"\bhv[sbr]\.(?=[A-Za-z_\-]*\d)[A-Za-z0-9_\-]{24,}"),
        ("hvs.", "hvb.", "hvr."),
        0.9,
    ),
    (
        re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        ("eyJ",),
        0.9,
    ),
)
# PEM (RFC 7468) and OpenPGP's armor (RFC 4880 6.2: "PGP PRIVATE KEY BLOCK").
_PRIVATE_KEY_END = r"-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"
_PRIVATE_KEY = re.compile(
    rf"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?{_PRIVATE_KEY_END}"
)
_PRIVATE_KEY_FOOTER = re.compile(_PRIVATE_KEY_END)


def _private_keys(text: str) -> Iterator[re.Match[str]]:
    """The private-key blocks of `text`, looked for up to its last footer: a header with no
    footer after it read the rest of the text, each of many such headers (quadratic: 100,000
    characters of headers took 4.7 s). A footer ends after each one before it, so the last
    one found is the last there is."""
    last_footer = text.rfind("-----END ")
    while last_footer >= 0:
        footer = _PRIVATE_KEY_FOOTER.match(text, last_footer)
        if footer is not None:
            yield from _PRIVATE_KEY.finditer(text, 0, footer.end())
            return
        last_footer = text.rfind("-----END ", 0, last_footer)


_BEARER = re.compile(r"\b[Bb]earer\s+([A-Za-z0-9_\-.~+/]{16,}=*)")
# A value assigned to a name that ends in a secret word, as env files, configs, JSON, YAML and
# code write them: "DB_PASSWORD=...", "export AWS_SECRET_ACCESS_KEY=...", '"api_key": "..."',
# "clientSecret: ...", "PGPASSWORD=...". The word must end the name ("max_tokens", "token_type"
# and "secretName" are no secrets); "pass" and "pwd" must start a word of it ("bypass"), and
# "pass" alone only in lower case ("--- PASS: TestLogin" is a test result). What comes before
# the word does not matter, so it is not matched. The lookahead of first letters lets the
# alternation run only where a word can start (3x faster on long prompts).
_SECRET_NAME_END = (
    r"(?=[ACEMPSTacempst])(?:(?P<password>(?i:pass(?:word|wd|phrase))"
    r"|(?<![\w.\-])(?:pass|pwd|Pwd|PWD)|(?<=[_.\-])(?i:pass|pwd)|(?<=[a-z])(?:Pass|Pwd))"
    r"|(?i:secret|token|(?:api|access|secret|private|signing|encryption|master|auth|client)"
    r"[_\-]?key))"
)
_SECRET_NAME = re.compile(rf"{_SECRET_NAME_END}$")


def names_a_secret(name: str) -> bool:
    """Whether a variable or field called `name` holds a secret ("DB_PASSWORD", "api_key")."""
    return _SECRET_NAME.search(name) is not None


# The value: quoted (also JSON escaped inside a string, \"...\") or bare up to a space, quote
# or the separators of query strings and connection strings (&, ;, ","). A quoted value runs
# over its escapes, each taken whole (atomic, so a run of backslashes is read one way only):
# `"ab\"cd12345"` is one password, not "ab" and the rest in clear; inside an escaped string
# (`\"ab\\\"cd\"`) an escaped backslash and quote are three backslashes and the quote.
_ASSIGNED_SECRET = re.compile(
    rf"{_SECRET_NAME_END}\\?[\"']?[ \t]*(?::=|[:=])(?!=)[ \t]*"
    r"(?:(?P<quote>\\?[\"'])(?P<quoted>(?>\\\\\\.|\\.|[^\n\\])*?)(?P=quote)"
    r"|(?P<bare>[^\s\"'&;,]+))"
)
# The password of a URL's user information (RFC 3986): "postgres://admin:S3cret@db:5432/app",
# "redis://:S3cret@host"; the user name may stay.
# Its scheme is read from the first letter of a run of scheme characters that may start one,
# once per run: tried from each letter of "a.a.a.a..." the run was read to its end from each
# of them (quadratic: 100,000 characters took 7 s).
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?>[A-Za-z0-9+.\-]*?\b[A-Za-z])[A-Za-z0-9+.\-]*://"
    r"[^\s:/@?#]*:([^\s/@?#]+)@"
)
# HTTP Basic credentials (RFC 7617): base64 of "user:password", checked by decoding.
_BASIC_CREDENTIALS = re.compile(r"\b(?i:basic)[ \t]+([A-Za-z0-9+/]{4,}={0,2})(?![\w+/=])")
# "curl -u admin:S3cret! ...", "wget --user=bob:pw": the password after the user name. The
# options of a command are read up to the next command's name, where the same option would
# be found again: a line of many "curl " was read to its end from each (quadratic: 100,000
# characters took 18 s); so for the MySQL clients below.
_CURL = r"\b(?:curl|wget)\b"
_CLI_CREDENTIALS = re.compile(
    rf"{_CURL}(?:(?!{_CURL})[^\n])*?[ \t](?:-u|--user)(?:[ \t]+|=)[\"']?[^\s:\"']*:([^\s\"']+)"
)
# "mysql -u root -pS3cret": the MySQL clients take the password written onto "-p" ("-P" is
# the port; a lone "-p" asks for it).
_MYSQL = r"\bmysql(?:dump|admin|import|show|check|slap)?\b"
_MYSQL_PASSWORD = re.compile(
    rf"{_MYSQL}(?:(?!{_MYSQL})[^\n|;&])*?[ \t]-p"
    r"(?:(?P<quote>[\"'])(?P<quoted>[^\n]*?)(?P=quote)|(?P<bare>[^\s\"'\-][^\s\"']*))"
)
# An Azure storage account's key in its connection string: 64 bytes, in base64.
_AZURE_ACCOUNT_KEY = re.compile(r"\bAccountKey=([A-Za-z0-9+/]{86}==)(?![A-Za-z0-9+/=])")
# Webhook URLs carry their secret in the path (Slack, Discord).
_WEBHOOK_PATH = re.compile(
    r"\bhttps://(?:hooks\.slack\.com/(?:services|workflows|triggers)|"
    r"(?:discord|discordapp)\.com/api/webhooks)/([\w\-]+(?:/[\w\-]+)*)"
)
# Values that stand for a secret without being one: references to variables or secret stores
# ("$DB_PASSWORD", "${{ secrets.TOKEN }}", "%(pw)s", "<your-password>", "{{ password }}"),
# special tokens of a tokenizer ("[UNK]", "</s>"), paths ("PWD=/home/ann"), code
# ("os.environ[...]", "self.password", "getpass()"), masks ("********") and type names or
# literals ("str", "None", "string").
_NOT_A_SECRET_VALUE = re.compile(
    r"[$%<{\[/]|~/|\.\.?/|[A-Za-z]:\\|[a-z_]+(?:\.\w+)+$|[A-Za-z_][\w.]*[(\[]|[*•.xX#\-]{3,}$"
    r"|(?i:none|null|nil|true|false|undefined|str|string|int|bool|bytes|secretstr|optional|"
    r"required|any|password|passwd|secret|token|redacted|masked|hidden|empty)$"
)


def plausible_secret(value: str, *, password: bool, quoted: bool) -> bool:
    """True if an assigned `value` may be a real secret. A password may be short: a quoted
    one of any length, a bare one of eight characters, or four with a digit or symbol
    ("hunter2"; "Password: expired" is prose). Keys and tokens are random: eight characters
    with a digit, or sixteen ("Unexpected token: 'function'" is an error message)."""
    if not value or _NOT_A_SECRET_VALUE.match(value):
        return False
    if password:
        return quoted or len(value) >= 8 or (len(value) >= 4 and not value.isalpha())
    return len(value) >= 16 or (len(value) >= 8 and any(ch.isdigit() for ch in value))


def _assigned(match: re.Match[str]) -> tuple[int, int] | None:
    quoted = match.group("quoted") is not None
    start, end = match.span("quoted" if quoted else "bare")
    if not quoted:  # a bare value ends before sentence punctuation: "password=hunter2."
        end = start + len(match.string[start:end].rstrip(".)]}"))
    value = match.string[start:end]
    password = match.group("password") is not None
    return (start, end) if plausible_secret(value, password=password, quoted=quoted) else None


def _credentials(match: re.Match[str]) -> tuple[int, int] | None:
    value = match.group(1)
    return match.span(1) if plausible_secret(value, password=True, quoted=True) else None


def _quoted_credentials(match: re.Match[str]) -> tuple[int, int] | None:
    part = "bare" if match.group("quoted") is None else "quoted"
    value = match.group(part)
    return match.span(part) if plausible_secret(value, password=True, quoted=True) else None


def _basic_credentials(match: re.Match[str]) -> tuple[int, int] | None:
    try:
        decoded = base64.b64decode(match.group(1), validate=True)
    except ValueError:  # "Basic authentication" is prose
        return None
    return match.span(1) if b":" in decoded else None


_SecretSpan = Callable[[re.Match[str]], tuple[int, int] | None]
# Secrets found by what surrounds them, with the lower-case text a match must contain and
# where in a match the secret is.
_SECRETS_IN_CONTEXT: tuple[tuple[re.Pattern[str], tuple[str, ...], _SecretSpan], ...] = (
    (_BEARER, ("bearer",), lambda match: match.span(1)),
    (_ASSIGNED_SECRET, ("pass", "pwd", "secret", "token", "key"), _assigned),
    (_URL_PASSWORD, ("://",), _credentials),
    (_BASIC_CREDENTIALS, ("basic",), _basic_credentials),
    (_CLI_CREDENTIALS, ("curl", "wget"), _credentials),
    (_MYSQL_PASSWORD, ("mysql",), _quoted_credentials),
    (_AZURE_ACCOUNT_KEY, ("accountkey=",), lambda match: match.span(1)),
    (_WEBHOOK_PATH, ("hooks.slack.com", "discord"), lambda match: match.span(1)),
)


def find_secrets(text: str) -> Iterator[RuleMatch]:
    for pattern, markers, score in _SECRET_PATTERNS:
        if any(marker in text for marker in markers):
            for match in pattern.finditer(text):
                yield RuleMatch("SECRET", match.start(), match.end(), score)
    for match in _private_keys(text) if "-----BEGIN " in text else ():
        yield RuleMatch("SECRET", match.start(), match.end(), 1.0)
    lowered = text.lower()
    for pattern, words, secret_span in _SECRETS_IN_CONTEXT:
        if any(word in lowered for word in words):
            for match in pattern.finditer(text):
                span = secret_span(match)
                if span is not None and span[1] > span[0]:
                    yield RuleMatch("SECRET", span[0], span[1], 0.85)
