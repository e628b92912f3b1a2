"""Where a long prompt may be cut so that llama.cpp, reading the pieces one after the other,
gives the tokens it gives the whole (its own cuts, at special tokens, cost time that grows with
their number squared). The real vocabularies are compared in
tests/integration/test_tokenize_in_pieces.py; these are the rules, on made-up tokens."""

from __future__ import annotations

import pytest
from llama_cpp import llama_cpp as flags

from smallfirst.backends.llamacpp_specials import CUT_TEXTS_LONGER_THAN, SpecialTokens

CONTROL = flags.LLAMA_TOKEN_ATTR_CONTROL
USER_DEFINED = flags.LLAMA_TOKEN_ATTR_USER_DEFINED
UNKNOWN = flags.LLAMA_TOKEN_ATTR_UNKNOWN
LSTRIP = flags.LLAMA_TOKEN_ATTR_LSTRIP
RSTRIP = flags.LLAMA_TOKEN_ATTR_RSTRIP
FILLER = "x" * CUT_TEXTS_LONGER_THAN  # long enough to be cut at all


def starts(specials: SpecialTokens, text: str, *, special: bool = True) -> list[int]:
    """Where each piece after the first starts, past the filler."""
    pieces = specials.pieces(FILLER + text, special=special)
    assert "".join(pieces) == FILLER + text  # nothing lost, nothing added
    offsets = [sum(map(len, pieces[:i])) for i in range(1, len(pieces))]
    return [offset - len(FILLER) for offset in offsets]


def test_a_long_text_is_cut_before_the_special_tokens_llama_cpp_cuts_at() -> None:
    specials = SpecialTokens([("<s>", CONTROL), ("<tool>", USER_DEFINED)], flags, cut_every=0)
    text = "a<s>b<tool>c"
    assert starts(specials, text) == [1, 5]
    # read as text, only user-defined tokens are cut at by llama.cpp
    assert starts(specials, text, special=False) == [5]


def test_a_short_text_is_read_whole() -> None:
    specials = SpecialTokens([("<s>", CONTROL)], flags, cut_every=0)
    assert specials.pieces("a<s>" * 100, special=True) == ["a<s>" * 100]


def test_every_bounds_the_occurrences_in_a_piece() -> None:
    specials = SpecialTokens([("<s>", CONTROL)], flags, cut_every=256)
    pieces = specials.pieces(FILLER + "a<s>" * 1000, special=True)
    assert [piece.count("<s>") for piece in pieces] == [256, 256, 256, 232]


@pytest.mark.parametrize(
    ("tokens", "text", "special"),
    [
        # another token's text shares an end with this one's, or one as long starts inside
        # it: which one llama.cpp reads there depends on its order
        ([("<s>", CONTROL), ("x<s", CONTROL)], "ax<s>", True),
        ([("ab", CONTROL), ("bc", CONTROL)], "zabc", True),
        # a control token that is also user-defined is not cut at when read as text
        ([("</s>", CONTROL | USER_DEFINED)], "z</s>", False),
    ],
)
def test_no_cut_where_llama_cpp_might_not_cut(
    tokens: list[tuple[str, int]], text: str, special: bool
) -> None:
    assert starts(SpecialTokens(tokens, flags, cut_every=0), text, special=special) == []


def test_texts_that_overlap_are_cut_before_where_nothing_crosses_or_outranks_them() -> None:
    # Gemma 3's line breaks: "\n", "\n\n"... each a token, read the longest first
    runs = [("\n" * size, USER_DEFINED) for size in (1, 2, 3)]
    specials = SpecialTokens(runs, flags, cut_every=0)
    # not before the last: a "\n\n\n" that llama.cpp does not read crosses it
    assert starts(specials, "a\n\nb\nc\n\n\n\nd") == [1, 4, 6]
    assert starts(specials, "a\n\nb\nc", special=False) == [1, 4]
    # "<s>x" is read before "<s>" inside it
    contained = SpecialTokens([("<s>", CONTROL), ("<s>x", CONTROL)], flags, cut_every=0)
    assert starts(contained, "a<s>x") == [1]
    # two occurrences of one text overlap: the left one is read
    assert starts(SpecialTokens([("aa", CONTROL)], flags, cut_every=0), "zaaaa") == [1]
    # with a token that strips white space beside it, white space is not cut before
    stripping = SpecialTokens([*runs, ("<u>", CONTROL | RSTRIP)], flags, cut_every=0)
    assert starts(stripping, "a\n\nb<u>c") == [4]


def test_a_token_that_strips_the_space_before_it_is_cut_at_only_after_a_non_space() -> None:
    specials = SpecialTokens([("<mask>", USER_DEFINED | LSTRIP)], flags, cut_every=0)
    assert starts(specials, "a <mask>b<mask>") == [9]
    assert starts(specials, "a\n<mask>") == []


@pytest.mark.parametrize(
    ("tokens", "text", "cuts"),
    [
        # Read whole, the token before strips the white space after it (Phi-3's do), the
        # space of " <t>" too, which is then no token; cut before it, " <t>" would be one.
        ([("<u>", CONTROL | RSTRIP), (" <t>", CONTROL)], "a<u> <t>", [1]),
        # The longer "<mask>" is read first and strips the space before it, that of "<t> "
        ([("<mask>", USER_DEFINED | LSTRIP), ("<t> ", CONTROL)], "a<t> <mask>", []),
    ],
)
def test_a_token_with_white_space_at_an_end_is_not_cut_at(
    tokens: list[tuple[str, int]], text: str, cuts: list[int]
) -> None:
    assert starts(SpecialTokens(tokens, flags, cut_every=0), text) == cuts


def test_the_unknown_token_is_cut_at_only_when_special_tokens_are_parsed() -> None:
    specials = SpecialTokens([("<unk>", UNKNOWN)], flags, cut_every=0)
    assert starts(specials, "a<unk>") == [1]
    assert starts(specials, "a<unk>", special=False) == []


def test_spelled_special_tokens_leave_out_the_unknown_token_and_blank_texts() -> None:
    specials = SpecialTokens(
        [("<s>", CONTROL), ("<unk>", UNKNOWN), ("  ", USER_DEFINED), ("", CONTROL)], flags
    )
    assert specials.spelled == ("<s>",)
    assert specials.spelled_in("a<s>")
    assert specials.spelled_in("a\x00")
    assert not specials.spelled_in("a<unk>  b")


def test_texts_nested_hundreds_deep_are_still_found_the_longest_first() -> None:
    runs = [("\n" * size, USER_DEFINED) for size in range(1, 600)]  # each starts the next
    specials = SpecialTokens([*runs, ("<s>", CONTROL)], flags, cut_every=0)
    assert starts(specials, "a" + "\n" * 700 + "<s>") == [1, 701]  # not before the 101
    assert specials.occurrences_over(["\n" * 1200], 1) is None  # overlapped by each other


def test_occurrences_over_a_limit_count_only_tokens_no_other_can_overlap() -> None:
    specials = SpecialTokens(
        [("<s>", CONTROL), ("ab", CONTROL), ("bc", CONTROL)], flags, cut_every=0
    )
    assert specials.occurrences_over(["<s>" * 5, "<s>" * 3], 7) == 8
    assert specials.occurrences_over(["<s>" * 5, "<s>" * 3], 8) is None
    assert specials.occurrences_over(["abc" * 20], 7) is None  # ab and bc overlap
