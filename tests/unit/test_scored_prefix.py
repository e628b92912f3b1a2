"""`ScoredPrefix`: which echo scores a slot may reuse, and how they are kept true."""

from __future__ import annotations

from smallfirst.backends.llamacpp_scores import ScoredPrefix
from smallfirst.completions import TokenLogprob, TopLogprob


def score(position: int, alternatives: int) -> TokenLogprob:
    top = [TopLogprob(token=f"t{i}", logprob=-float(i)) for i in range(alternatives)]
    return TokenLogprob(token=f"p{position}", logprob=-1.0 - position, top=top)


def scored(length: int, alternatives: int) -> ScoredPrefix:
    prefix = ScoredPrefix()
    prefix.reuse(0, alternatives)
    for position in range(1, length):
        prefix.add(position, score(position, alternatives))
    return prefix


def test_only_the_shared_scored_prefix_with_enough_alternatives_is_usable() -> None:
    prefix = scored(4, alternatives=2)
    held = [10, 11, 12, 13, 14, 15]  # two more tokens held than scored (an answer followed)
    assert prefix.usable(held, [10, 11, 12, 13, 14, 99], top=2) == 4
    assert prefix.usable(held, [10, 11, 99], top=1) == 2
    assert prefix.usable(held, [10, 11, 12, 13], top=3) == 0  # fewer alternatives kept


def test_reused_scores_are_those_of_tokens_1_to_kept_cut_to_the_alternatives_asked() -> None:
    prefix = scored(5, alternatives=3)
    reused = prefix.reuse(3, top=1)
    assert [s.token if s else None for s in reused] == ["p1", "p2", "p3"]
    assert all(s is not None and len(s.top) == 1 for s in reused)
    assert prefix.top == 1  # scores added from here carry one alternative
    assert len(prefix.scores) == 4  # position 0 (None) and the three kept


def test_a_score_out_of_turn_drops_what_followed_and_a_gap_is_not_filled() -> None:
    prefix = scored(5, alternatives=1)
    prefix.add(2, score(2, 1))  # the slot read from position 2 again
    assert len(prefix.scores) == 3
    prefix.add(7, score(7, 1))  # positions 3 to 6 were read without logprobs
    assert len(prefix.scores) == 3
    prefix.keep(1)
    assert prefix.scores == [None]
