"""Redaction, restore and streamed restore (no model needed)."""

from __future__ import annotations

import itertools

from smallfirst.completions import Chunk, Completion
from smallfirst.privacy import (
    Finding,
    GuardResult,
    Redaction,
    StreamRestorer,
    audit_summary,
    redact_messages,
)
from smallfirst.privacy.redact import redact_texts
from smallfirst.privacy_step import restore
from smallfirst.types import ChatMessage, TextPart


def _find(text: str, entity_type: str, value: str, occurrence: int = 0) -> Finding:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(value, start + 1)
    return Finding(entity_type, start, start + len(value), 0.9)


def test_same_value_gets_same_placeholder_across_messages() -> None:
    first = "Ann Lee lives in Oslo."
    second = "Tell Ann Lee that Bob Ray called."
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content=first),
        ChatMessage(role="user", content=second),
    ]
    findings = [
        [],
        [_find(first, "PERSON", "Ann Lee"), _find(first, "LOCATION", "Oslo")],
        [_find(second, "PERSON", "Ann Lee"), _find(second, "PERSON", "Bob Ray")],
    ]
    redacted, redaction = redact_messages(messages, findings)
    assert redacted[0] is messages[0]
    assert redacted[1].text == "<PERSON_1> lives in <LOCATION_1>."
    assert redacted[2].text == "Tell <PERSON_1> that <PERSON_2> called."
    assert redaction.restore("Hi <PERSON_2>, <PERSON_1> is in <LOCATION_1>.") == (
        "Hi Bob Ray, Ann Lee is in Oslo."
    )
    assert "Ann" not in repr(redaction)


def test_a_value_found_once_is_redacted_wherever_it_recurs_as_a_word() -> None:
    """The detector saw "Ana" and "Seville" once each; the other copies go out as the same
    placeholders, in the same text and in others; "Banana" and "Anagram" keep their letters."""
    first = "My name is Ana. Add Ana to the list."
    second = "Ana lives in Seville. Tips for Seville? Banana, Anagram, Seville's."
    findings = [[_find(first, "PERSON", "Ana")], [_find(second, "LOCATION", "Seville")]]
    redacted, _ = redact_texts([first, second], findings)
    assert redacted == [
        "My name is <PERSON_1>. Add <PERSON_1> to the list.",
        "<PERSON_1> lives in <LOCATION_1>. Tips for <LOCATION_1>? Banana, Anagram, <LOCATION_1>'s.",
    ]


def test_a_message_of_text_parts_is_redacted_part_by_part() -> None:
    """Findings are offsets into the parts read as one text (joined by a line break); each
    goes back to its part, and the message keeps its parts (it went up as one string). A name
    split across parts ("Jo" + "hn Smith") is hidden in both, each piece restored as written."""
    texts = ["Call Jo", "hn Smith at a@b.io", "today"]
    message = ChatMessage(role="user", content=[TextPart(type="text", text=t) for t in texts])
    joined = "\n".join(texts)
    findings = [_find(joined, "PERSON", "Jo\nhn Smith"), _find(joined, "EMAIL_ADDRESS", "a@b.io")]
    (redacted,), redaction = redact_messages([message], [findings])
    assert isinstance(redacted.content, list)
    assert [part.text for part in redacted.content] == [
        "Call <PERSON_1>",
        "<PERSON_2> at <EMAIL_ADDRESS_1>",
        "today",
    ]
    assert redaction.restore("<PERSON_1>|<PERSON_2>|<EMAIL_ADDRESS_1>") == "Jo|hn Smith|a@b.io"


def test_placeholder_already_in_input_is_not_reused() -> None:
    text = "literal <PERSON_1> and Ann"
    redacted, redaction = redact_texts([text], [[_find(text, "PERSON", "Ann")]])
    assert redacted == ["literal <PERSON_1> and <PERSON_2>"]
    assert redaction.restore(redacted[0]) == "literal <PERSON_1> and Ann"


def test_texts_numbered_first_get_the_first_placeholders_wherever_they_are() -> None:
    texts = ["Write to ann@x.io", "Copy eve@x.io", "or bob@x.io"]
    findings = [[_find(t, "EMAIL_ADDRESS", t.split()[-1])] for t in texts]
    redacted, _ = redact_texts(texts, findings, numbered_first=[2, 1])
    assert redacted == [
        "Write to <EMAIL_ADDRESS_3>",
        "Copy <EMAIL_ADDRESS_2>",
        "or <EMAIL_ADDRESS_1>",
    ]


def test_unknown_placeholders_are_left_alone() -> None:
    redaction = Redaction({"<PERSON_1>": "Ann"})
    assert redaction.restore("<PERSON_9> <PERSON_1> <b>") == "<PERSON_9> Ann <b>"


ANSWER = "Dear <PERSON_1>, your card <CREDIT_CARD_1> ships to <LOCATION_12> <LOC and <PERSON_1>"
VALUES = {
    "<PERSON_1>": "Ann Lee",
    "<CREDIT_CARD_1>": "4111 1111 1111 1111",
    "<LOCATION_12>": "1 Main St",
}
EXPECTED = "Dear Ann Lee, your card 4111 1111 1111 1111 ships to 1 Main St <LOC and Ann Lee"


def _stream(chunks: list[str]) -> tuple[str, list[str]]:
    restorer = StreamRestorer(Redaction(dict(VALUES)))
    outputs = [restorer.feed(chunk) for chunk in chunks]
    outputs.append(restorer.flush())
    return "".join(outputs), outputs


def test_stream_restore_for_every_single_split_point() -> None:
    for cut in range(len(ANSWER) + 1):
        restored, _ = _stream([ANSWER[:cut], ANSWER[cut:]])
        assert restored == EXPECTED, cut


def test_stream_restore_for_every_pair_of_split_points() -> None:
    for first, second in itertools.combinations(range(len(ANSWER) + 1), 2):
        chunks = [ANSWER[:first], ANSWER[first:second], ANSWER[second:]]
        restored, _ = _stream(chunks)
        assert restored == EXPECTED, (first, second)


def test_stream_restore_character_by_character_holds_back_only_prefixes() -> None:
    restorer = StreamRestorer(Redaction(dict(VALUES)))
    shown = ""
    for index, char in enumerate(ANSWER):
        shown += restorer.feed(char)
        held = restorer._pending
        assert held == "" or any(p.startswith(held) and p != held for p in VALUES), index
    shown += restorer.flush()
    assert shown == EXPECTED


def test_stream_without_redaction_passes_through() -> None:
    restorer = StreamRestorer(Redaction())
    assert restorer.feed("<PERS") == "<PERS"
    assert restorer.flush() == ""


def test_audit_summary_has_counts_and_action_but_no_values() -> None:
    findings = [Finding("PERSON", 0, 3, 0.9), Finding("PERSON", 5, 8, 0.9),
                Finding("EMAIL_ADDRESS", 9, 20, 1.0)]  # fmt: skip
    assert audit_summary(findings, "redact") == {
        "EMAIL_ADDRESS": {"count": 1, "action": "redact"},
        "PERSON": {"count": 2, "action": "redact"},
    }


def test_an_upstreams_refusal_and_reasoning_get_the_values_back() -> None:
    guard = GuardResult("redact", [], redaction=Redaction({"<PERSON_1>": "Ana Ruiz"}))
    whole = restore(
        Completion(text="", refusal="I won't mail <PERSON_1>.", reasoning="<PERSON_1> asked"),
        guard,
    )
    assert (whole.refusal, whole.reasoning) == ("I won't mail Ana Ruiz.", "Ana Ruiz asked")
    pieces = [
        Chunk(reasoning="<PERSON_1> as"),
        Chunk(refusal="I won't mail <PER"),
        Chunk(refusal="SON_1>."),
        Chunk(finish_reason="stop"),
    ]
    restored = restore(pieces, guard)
    assert "".join(chunk.refusal for chunk in restored) == "I won't mail Ana Ruiz."
    assert "".join(chunk.reasoning for chunk in restored) == "Ana Ruiz as"


def test_the_parts_of_a_full_name_found_once_are_redacted_where_they_recur_alone() -> None:
    first, second = "I am Tomasz Kowalski.", "Tomasz will ask Ms Kowalski and Li about it."
    redacted, redaction = redact_texts(
        [first, second], [[_find(first, "PERSON", "Tomasz Kowalski")], []]
    )
    assert redacted == ["I am <PERSON_1>.", "<PERSON_2> will ask Ms <PERSON_3> and Li about it."]
    assert [redaction.restore(text) for text in redacted] == [first, second]


def test_placeholders_escaped_for_html_or_markdown_are_restored_escaped_as_written() -> None:
    """A model writing HTML escapes the brackets (else a browser reads a tag and hides it),
    one writing Markdown may too: the user saw `<PERSON_1>` where the value belonged."""
    redaction = Redaction({"<PERSON_1>": 'Ann "Nan" Lee', "<EMAIL_ADDRESS_1>": "a&b@x.org"})
    html_answer = '<p>Dear &lt;PERSON_1&gt;, <a title="&lt;EMAIL_ADDRESS_1&gt;">mail</a></p>'
    assert redaction.restore(html_answer) == (
        '<p>Dear Ann &quot;Nan&quot; Lee, <a title="a&amp;b@x.org">mail</a></p>'
    )
    assert redaction.restore("Dear \\<PERSON_1\\>,") == 'Dear Ann "Nan" Lee,'
    # a Windows path's backslash before a placeholder is the path's
    assert redaction.restore("C:\\Users\\<PERSON_1>\\") == 'C:\\Users\\Ann "Nan" Lee\\'


def test_labels_rewritten_otherwise_or_never_issued_are_left_alone() -> None:
    """A model also makes names and tags of labels (`PERSON_1 = "<PERSON_1>"`,
    `<person_1>...</person_1>`): only the angle-bracketed label is the placeholder."""
    redaction = Redaction({"<PERSON_1>": "Ann"})
    answer = "PERSON_1 [PERSON_1] {PERSON_1} <person_1> <PERSON_7> &lt;PERSON_7&gt; \\<PERSON_1>"
    assert redaction.restore(answer) == answer.replace("\\<PERSON_1>", "\\Ann")


def test_a_placeholder_the_input_spells_escaped_is_not_reused() -> None:
    text = "Our template prints &lt;PERSON_1&gt; and \\<PERSON_2\\> for Ann"
    redacted, redaction = redact_texts([text], [[_find(text, "PERSON", "Ann")]])
    assert redacted == [text.replace("Ann", "<PERSON_3>")]
    assert redaction.restore(f"{text} &lt;PERSON_3&gt;") == f"{text} Ann"


def test_stream_restore_of_escaped_spellings_for_every_single_split_point() -> None:
    redaction = Redaction({"<PERSON_1>": "Ann & Bo", "<LOCATION_1>": "Oslo"})
    answer = "&lt;PERSON_1&gt; in \\<LOCATION_1\\>, & \\ &lt;P <PERSON_1&gt;"
    expected = "Ann &amp; Bo in Oslo, & \\ &lt;P Ann &amp; Bo"
    for cut in range(len(answer) + 1):
        restorer = redaction.stream_restorer()
        restored = restorer.feed(answer[:cut]) + restorer.feed(answer[cut:]) + restorer.flush()
        assert restored == expected, cut


def test_a_value_seen_only_where_it_recurs_is_also_redacted_where_it_came_first() -> None:
    """The detector may see only the second "Ana" ("my name is Ana"): the first, before it,
    goes out as the same placeholder, not as the name."""
    text = "Ana wrote this. My name is Ana."
    redacted, _ = redact_texts([text], [[_find(text, "PERSON", "Ana", occurrence=1)]])
    assert redacted == ["<PERSON_1> wrote this. My name is <PERSON_1>."]


def test_two_letter_parts_of_a_name_are_not_redacted_where_they_recur_alone() -> None:
    """The "An" of "An Nguyen" is also the article: only parts of three letters or more name
    the person alone."""
    first, second = "I am An Nguyen.", "An hour later Nguyen called."
    redacted, _ = redact_texts([first, second], [[_find(first, "PERSON", "An Nguyen")], []])
    assert redacted == ["I am <PERSON_1>.", "An hour later <PERSON_2> called."]


def test_the_words_of_an_address_are_not_redacted_where_they_recur_alone() -> None:
    """Only a person's name is split into parts: "Oxford" of "12 Oxford Road" may be the
    city, and "Road" is any road."""
    first, second = "Ship to 12 Oxford Road.", "Which Road in Oxford? 12 Oxford Road."
    findings = [[_find(first, "LOCATION", "12 Oxford Road")], []]
    redacted, _ = redact_texts([first, second], findings)
    assert redacted == ["Ship to <LOCATION_1>.", "Which Road in Oxford? <LOCATION_1>."]


def test_a_value_found_in_wide_letters_is_redacted_where_it_recurs_in_plain_ones() -> None:
    first, second = "Ship to Ｏｓｌｏ.", "Oslo in March."
    findings = [[_find(first, "LOCATION", "Ｏｓｌｏ")], []]
    redacted, redaction = redact_texts([first, second], findings)
    assert redacted == ["Ship to <LOCATION_1>.", "<LOCATION_2> in March."]
    assert redaction.values == {"<LOCATION_1>": "Ｏｓｌｏ", "<LOCATION_2>": "Oslo"}


def test_a_value_of_invisible_characters_only_is_not_looked_for_between_words() -> None:
    """A finding that reads as nothing once normalised (a zero-width space) must not match
    the empty text between every two punctuation marks of the other texts."""
    first, second = "a\u200bb", "Hello, world. Bye!"
    redacted, _ = redact_texts([first, second], [[_find(first, "PERSON", "\u200b")], []])
    assert redacted == ["a<PERSON_1>b", "Hello, world. Bye!"]


def test_values_restored_inside_a_json_string_keep_their_letters_and_escape_quotes() -> None:
    """A tool call's arguments get the value as it was sent (not `\\u00eb` escapes), with
    only what JSON must escape escaped."""
    redaction = Redaction({"<PERSON_1>": 'Zoë "Z" Ålund'})
    assert redaction.restore('{"to": "<PERSON_1>"}', in_json_string=True) == (
        '{"to": "Zoë \\"Z\\" Ålund"}'
    )


def test_a_value_inside_a_longer_word_is_not_a_repeat() -> None:
    text = "Ask Ann. MaryAnn and Annette know."
    redacted, _ = redact_texts([text], [[_find(text, "PERSON", "Ann")]])
    assert redacted == ["Ask <PERSON_1>. MaryAnn and Annette know."]


def test_a_repeat_written_against_another_finding_is_redacted_too() -> None:
    """Spans that touch do not overlap: "Ana" pasted right before a phone number is still
    Ana."""
    first, second = "I am Ana.", "WhatsApp: Ana+44 7700 900123"
    findings = [[_find(first, "PERSON", "Ana")], [_find(second, "PHONE_NUMBER", "+44 7700 900123")]]
    redacted, _ = redact_texts([first, second], findings)
    assert redacted == ["I am <PERSON_1>.", "WhatsApp: <PERSON_1><PHONE_NUMBER_1>"]
