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
