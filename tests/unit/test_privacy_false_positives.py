"""Everyday developer and business prompts that are not PII, each next to a real name or
place that must still be found."""

from __future__ import annotations

import pytest

from smallfirst.privacy import PiiDetector, addresses, names, patterns, vetoes
from tests.helpers import found_of_types, matched_texts


def _people(detector: PiiDetector, text: str) -> list[str]:
    return found_of_types(detector, text, "PERSON")


HEADER_AND_FIELD_LABELS = [
    "Authorization: Bearer abcDEF1234567890xyzXYZ",
    "Proxy-Authorization: Basic dXNlcjpwYXNzd29yZA==",
    "Accept-Language: En-GB\nX-Request-Id: Abc123\nConnection: Keep-Alive",
    "Status: Open\nPriority: High\nSeverity: Critical\nEnvironment: Staging",
    "ERROR: Disk full\nWARNING: Retrying\nHint: Free some space",
    "Description: Login fails\nResolution: Fixed in the next build",
]
COMPANIES = [
    "We had a call with Umbrella Corp on Monday.",
    "Please contact Initrode Corporation support about the licence.",
    "Our contract with Vandelay Industries Ltd ends soon.",
    "We partnered with Kessler AG and Brandt GmbH last year.",
    "Ask Harrow plc or Fenwick & Fenwick Co. about it.",
    "Talk to Dunmore, Inc. before Friday.",
    "The invoice came from Carver and Sons.",
]
ROLES_AND_GROUPS = [
    "Dear Hiring Manager,\nI am applying for the backend role.",
    "Dear Valued Customer,\nYour order has shipped.",
    "Dear Sir or Madam,\nI would like a refund.",
    "Best regards,\nCustomer Success Team",
    "Thanks,\nNorthwind Support",
    "Tell Marketing to update the landing page.",
    "Hey Python devs, any tips for packaging?",
]
NOT_PEOPLE = [
    *[pytest.param(text, id=f"label-{i}") for i, text in enumerate(HEADER_AND_FIELD_LABELS)],
    *[pytest.param(text, id=f"company-{i}") for i, text in enumerate(COMPANIES)],
    *[pytest.param(text, id=f"role-{i}") for i, text in enumerate(ROLES_AND_GROUPS)],
]


@pytest.mark.parametrize("text", NOT_PEOPLE)
def test_labels_companies_roles_and_groups_are_not_people(detector: PiiDetector, text: str) -> None:
    assert _people(detector, text) == []


def test_a_bearer_token_is_still_a_secret_and_a_speaker_still_a_person(
    detector: PiiDetector,
) -> None:
    text = "Authorization: Bearer abcDEF1234567890xyzXYZ"
    assert found_of_types(detector, text, "SECRET") == ["abcDEF1234567890xyzXYZ"]
    text = "Priya: Did the deploy go out?\nTomas: Yes, an hour ago."
    assert _people(detector, text) == ["Priya", "Tomas"]
    text = "Status: Open\nAssignee: Ingrid Holm"
    assert _people(detector, text) == ["Ingrid Holm"]


def test_people_next_to_companies_are_still_found(detector: PiiDetector) -> None:
    assert _people(detector, "I had a meeting with Joanna Kowalski yesterday") == [
        "Joanna Kowalski"
    ]
    text = "Forward the quote to Olga Petrova, head of sales at Vandelay Industries Ltd."
    assert _people(detector, text) == ["Olga Petrova"]


def test_a_signature_keeps_the_name_and_drops_the_job_title(detector: PiiDetector) -> None:
    text = "Kind regards,\nMaria Lindqvist\nSenior Engineer"
    assert _people(detector, text) == ["Maria Lindqvist"]
    assert _people(detector, "Dear Dr. Amara Okafor,\nThanks for the call.") == ["Amara Okafor"]


@pytest.mark.parametrize(
    "text",
    [
        "def get_user(user_id: int) -> User:\n    return UserService.find(user_id)",
        "java.lang.NullPointerException at com.example.OrderController.create",
        "Why does my ASP.NET app ignore the config?",
        "Convert this PostgreSQL query to MySQL.",
        "2024-05-01T10:00:00Z INFO Started ApplicationContext in 2.3 seconds",
        "Set-Cookie: session=abc123; Path=/; HttpOnly",
        "Write a Python function that parses JSON.",
        "Traceback: KeyError in load_settings(path) at line 7",
        "Can Rust replace C++ in the kernel?",
    ],
)
def test_code_and_logs_are_neither_people_nor_places(detector: PiiDetector, text: str) -> None:
    assert found_of_types(detector, text, "PERSON", "LOCATION") == []


def test_names_with_an_inner_capital_are_still_names(detector: PiiDetector) -> None:
    text = "Ronald McDonald and DeShawn Jackson met LaToya Brown and Kevin FitzGerald."
    assert _people(detector, text) == [
        "Ronald McDonald", "DeShawn Jackson", "LaToya Brown", "Kevin FitzGerald"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "Deploy it with Azure.",
        "Help me with Kubernetes.",
        "I wrote it in Python.",
        "Port this service from Python to Rust.",
        "Thanks Python community!",
        "Integrate with Stripe and Twilio.",
        "The Jenkins pipeline fails after the React hooks change.",
        "My Outlook keeps crashing on Windows 11.",
        "Step 1: Install Node.",
        "How do I migrate from Webpack to Vite in an existing Vue project?",
        "How do I center a div with Flexbox?",
        "The pod crashed after the Helm upgrade.",
        "How can I speed up pandas on a 10 GB CSV?",
        "The router does 2.4 GHz and 5 GHz.",
    ],
)
def test_languages_clouds_and_tools_are_neither_people_nor_places(
    detector: PiiDetector, text: str
) -> None:
    assert found_of_types(detector, text, "PERSON", "LOCATION") == []


def test_people_and_places_next_to_tools_are_still_found(detector: PiiDetector) -> None:
    assert _people(detector, "Guido van Rossum created Python.") == ["Guido van Rossum"]
    assert _people(detector, "I talked with Pedro about the Azure bill.") == ["Pedro"]
    text = "Linus Torvalds wrote Linux in Helsinki."
    assert found_of_types(detector, text, "PERSON", "LOCATION") == ["Linus Torvalds", "Helsinki"]
    assert _people(detector, "Ruby Rose and Julia Roberts") == ["Ruby Rose", "Julia Roberts"]
    text = "Ship 10 GB of logs to Anna Helm in GB tomorrow."
    assert found_of_types(detector, text, "PERSON", "LOCATION") == ["Anna Helm", "GB"]


def test_a_description_joined_to_a_prefix_is_not_part_of_the_name(detector: PiiDetector) -> None:
    assert _people(detector, "A song by ex-Zombie Lundberg, sadly.") == ["Lundberg"]
    assert _people(detector, "We hired ex-Googler Maria Lopez last week.") == ["Maria Lopez"]
    assert _people(detector, "The ex-Marine Ann Lee spoke first.") == ["Ann Lee"]
    assert _people(detector, "Mary-Kate Olsen and Jean-Luc Picard arrived.") == [
        "Mary-Kate Olsen",
        "Jean-Luc Picard",
    ]


def test_a_place_after_a_cue_ends_at_a_word_boundary() -> None:
    text = "My sister moved to Lisbon last year; I live in Villafranca del Cid."
    places = matched_texts(addresses.find_cued_places, text)
    assert places == ["Lisbon", "Villafranca del Cid"]  # not "Lisbon la" (of "last")


def test_greetings_to_a_team_name_no_one(detector: PiiDetector) -> None:
    text = "Hi Team,\nplease review the PR before Friday. Thanks, Priya"
    assert _people(detector, text) == ["Priya"]
    assert found_of_types(detector, text, "DATE_TIME") == ["Friday"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Authorization", True),
        ("Content-Type", True),
        ("X-Correlation-Id", True),
        ("Description", True),
        ("TODO", True),
        ("Ann", False),
        ("Anne-Marie", False),
        ("Marion", False),
    ],
)
def test_field_labels(label: str, expected: bool) -> None:
    assert vetoes.is_field_label(label) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme Corp", True),
        ("Volvo AB", True),
        ("Nestlé S.A.", True),
        ("S.A. Rao", False),  # initials, not a legal form
        ("Hiring Manager", True),
        ("UserRepository", True),
        ("getUser", True),
        ("MySQL", True),
        ("JSON", True),
        ("AJ", False),  # a nickname
        ("Rust", True),
        ("Ronald McDonald", False),
        ("Kevin FitzGerald", False),
        ("Ann Lee", False),
    ],
)
def test_not_a_name(value: str, expected: bool) -> None:
    assert names.not_a_name(value) is expected


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("ask Harrow plc", "Harrow", True),
        ("ask Dunmore, Inc.", "Dunmore", True),
        ("ask Kessler AG", "Kessler", True),
        ("ask Carver & Sons", "Carver", True),
        ("fix the Redux hooks", "Redux", True),
        ("give Maria API access", "Maria", False),  # an object, not a product
        ("ask Ann Lee", "Ann Lee", False),
        ("ask Ann S.A. Rao", "Ann", False),  # initials
        ("ask Ann AB Smith", "Ann", False),
    ],
)
def test_what_surrounds_a_name_can_make_it_a_company_or_a_product(
    text: str, name: str, expected: bool
) -> None:
    start = text.index(name)
    assert vetoes.names_a_thing(text, start, start + len(name)) is expected


NUMBERS_THAT_ARE_NOT_PHONES_OR_ADDRESSES = [
    "Resize the image to 1920x1080 and 3840x2160",
    "GPU: NVIDIA RTX 4090 24GB, driver 550.54.14, CUDA 12.4",
    "Benchmark: 1234 5678 9012 ops/sec",
    "The table has 12 345 678 rows and costs 1 234 567 EUR",
    "Our app version 4.10.2.1 crashes on start",
    "build number is 1.2.3.4",
    "Deploy release-1.2.3.4 tonight",
    "Java 17.0.10+7 LTS on Ubuntu 22.04.4 LTS",
    "SELECT id FROM orders WHERE total > 10 LIMIT 100 OFFSET 20",
    "docker run -p 5432:5432 -e POSTGRES_DB=test postgres:16.2",
]


@pytest.mark.parametrize("text", NUMBERS_THAT_ARE_NOT_PHONES_OR_ADDRESSES)
def test_sizes_versions_queries_and_commands_are_not_pii(detector: PiiDetector, text: str) -> None:
    assert found_of_types(detector, text, *detector.entities) == []


def test_phones_ips_and_places_next_to_them_are_still_found(detector: PiiDetector) -> None:
    text = "Resize to 1920x1080, then call 555-123-4567 x12 or 5551234567x89"
    assert found_of_types(detector, text, "PHONE_NUMBER") == ["555-123-4567 x12", "5551234567x89"]
    text = "driver 550.54.14 on 10.20.30.40, version 2 runs at 10.0.0.7, fax 555.123.4567"
    assert found_of_types(detector, text, "IP_ADDRESS", "PHONE_NUMBER") == [
        "10.20.30.40", "10.0.0.7", "555.123.4567"
    ]  # fmt: skip
    text = "Phone: +1 555 123 4567 US office, 40 000 users"
    assert found_of_types(detector, text, "PHONE_NUMBER") == ["+1 555 123 4567"]
    text = "SELECT name FROM users WHERE city = 'Paris' LIMIT 10"
    assert found_of_types(detector, text, "LOCATION") == ["Paris"]
    text = "Ship to 100 UNION STREET, SAN FRANCISCO"
    assert found_of_types(detector, text, "LOCATION") == ["100 UNION STREET, SAN FRANCISCO"]
    assert _people(detector, "kubectl apply -f deploy.yaml, then ping Maria") == ["Maria"]
    assert _people(detector, "Ask Maria -- she knows") == ["Maria"]


@pytest.mark.parametrize(
    ("text", "addresses"),
    [
        ("send_mail(to=\"a.b@example.com\", cc='john@example.org')",
         ["a.b@example.com", "john@example.org"]),
        ("GET /login?email=user123@hotmail.fr&pw=x", ["user123@hotmail.fr"]),
        ("https://api.example.com/users/maria@example.com", ["maria@example.com"]),
        ("Mail o'brien@example.ie or `ann+news@example.com`",
         ["o'brien@example.ie", "ann+news@example.com"]),
        ("DATABASE_URL=postgres://bob@db.example.com/app", []),  # a URL's user and host
    ],
)  # fmt: skip
def test_an_email_address_does_not_take_the_code_or_url_before_it(
    detector: PiiDetector, text: str, addresses: list[str]
) -> None:
    assert found_of_types(detector, text, "EMAIL_ADDRESS") == addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5551234567x89", False),  # seven or more digits before the "x": an extension
        ("1234 5678 9012 ops/sec", True),
        ("555 123 4567 office", False),
        ("driver 550.54.14", True),
        ("call 0800 123 4567 lines are open 8-8", False),
        ("ring 555 123 4567 Ms Lee", False),  # case matters: "Ms" is no millisecond
        ("driver at 550.54.14", False),
        ("+33 1 42 68 53 00 ms", False),  # a country code makes it a phone
    ],
)
def test_not_a_phone(text: str, expected: bool) -> None:
    number = next(m for m in patterns.find_phone_numbers(text) if m.score >= 0.4)
    assert vetoes.not_a_phone(text, number.start, number.end) is expected
