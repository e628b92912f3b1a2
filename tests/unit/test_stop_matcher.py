import random

from smallfirst.backends.llamacpp_answer import StopMatcher


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
