import random

import pytest

from smallfirst.backends.llamacpp_answer import AnswerWriter, PreparedPrompt, StopMatcher
from smallfirst.completions import Chunk, TokenLogprob, completion_from_chunks


def feed_all(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    out.append(matcher.flush())
    return "".join(out), False


def test_stop_split_across_pieces_is_found_and_cut() -> None:
    text = "alpha beta END gamma"
    for cut in range(1, len(text)):
        assert feed_all(["END"], [text[:cut], text[cut:]]) == ("alpha beta ", True)


def test_text_that_only_looks_like_a_stop_prefix_is_released() -> None:
    assert feed_all(["END"], ["the EN", "D", "ing"])[0] == "the "
    assert feed_all(["END"], ["the EN", "oh"]) == ("the ENoh", False)
    assert feed_all(["END"], ["trailing E"]) == ("trailing E", False)


def test_holds_back_only_a_possible_prefix() -> None:
    matcher = StopMatcher(["<|im_end|>"])
    assert matcher.feed("hello <|im") == ("hello ", False)
    assert matcher.feed("_e") == ("", False)
    assert matcher.feed("x") == ("<|im_ex", False)


class NaiveStops:
    """The matcher as it was written first: each stop's every prefix against the held-back
    text on each piece (its cost grew with the stops' lengths times the held-back text)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            emit, self.pending = self.pending[: min(hits)], ""
            return emit, True
        keep = max(
            (n for s in self.stops for n in range(1, len(s)) if self.pending.endswith(s[:n])),
            default=0,
        )
        emit = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(emit) :]
        return emit, False


def test_the_automata_emit_and_stop_as_the_plain_comparison_does() -> None:
    """Overlapping stops, stops that begin again inside themselves ("abab"), any cutting."""
    rng = random.Random(7)
    for _ in range(3000):
        stops = ["".join(rng.choices("ab", k=rng.randint(1, 5))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choices("abc", k=rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 6))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        fast, naive = StopMatcher(stops), NaiveStops(stops)
        for piece in pieces:
            result = fast.feed(piece)
            assert result == naive.feed(piece), (stops, pieces)
            if result[1]:  # a stop ends the answer
                break
        else:
            assert fast.flush() == naive.pending


def _written(pieces: list[str], stop: list[str], *, end_scored: bool = False) -> list[Chunk]:
    """The chunks the local engine writes for these tokens (the last index is the end of
    generation), each with its logprob."""
    chunks: list[Chunk] = []
    writer = AnswerWriter(
        PreparedPrompt(tokens=[0], max_tokens=100, stop=stop, end_token_scored=end_scored),
        chunks.append,
        token_bytes=lambda token: pieces[token].encode(),
        is_end=lambda token: token == len(pieces),
        cached_tokens=0,
    )
    spelled = [*pieces, "<end>"]
    for token in range(len(spelled)):
        if writer.add(token, lambda t: TokenLogprob(token=spelled[t], logprob=-0.5)):
            break
    writer.finish()
    return chunks


@pytest.mark.parametrize(
    ("pieces", "text", "tokens", "generated"),
    [
        # the stop's own token was in the logprobs, after the text it ended
        ([" four", ",", " five", " six"], " four,", [" four", ","], 3),
        # a token that begins before the cut stays, as its text did
        ([" four", ", fi", "ve"], " four,", [" four", ", fi"], 3),
        # what only looked like the stop's beginning is released with its logprobs
        ([" fi", "sh", "."], " fish.", [" fi", "sh", ".", "<end>"], 4),
    ],
)
def test_logprobs_are_those_of_the_text_before_the_stop(
    pieces: list[str], text: str, tokens: list[str], generated: int
) -> None:
    """The stop's tokens were generated (and are counted) but are not the answer's."""
    chunks = _written(pieces, [" five"], end_scored=True)
    answer = completion_from_chunks(chunks, with_logprobs=True)
    assert answer.text == text
    assert [logprob.token for logprob in answer.logprobs or []] == tokens
    assert answer.usage is not None
    assert answer.usage.completion_tokens == generated


def test_a_held_back_ending_comes_before_the_end_tokens_logprob() -> None:
    chunks = _written([" so", " fi"], [" five"], end_scored=True)
    pieces = [(chunk.text, [lp.token for lp in chunk.logprobs or []]) for chunk in chunks]
    assert pieces == [(" so", [" so"]), (" fi", [" fi", "<end>"]), ("", [])]
