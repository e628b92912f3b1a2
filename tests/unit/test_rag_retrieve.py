from __future__ import annotations

import pytest

from smallfirst.rag import reciprocal_rank_fusion
from smallfirst.rag.analysis import analyze, fts5_match_expression


def test_rrf_matches_a_hand_computed_case() -> None:
    # a: ranks 1 and 3 -> 1/61 + 1/63; b: ranks 2 and 1 -> 1/62 + 1/61; c: rank 3 only; d: rank 2
    fused = reciprocal_rank_fusion([[1, 2, 3], [2, 4, 1]], k=60)

    expected = {1: 1 / 61 + 1 / 63, 2: 1 / 62 + 1 / 61, 3: 1 / 63, 4: 1 / 62}
    assert [c.chunk_id for c in fused] == [2, 1, 4, 3]
    for scored in fused:
        assert scored.score == pytest.approx(expected[scored.chunk_id])


def test_rrf_breaks_ties_by_id_for_stable_output() -> None:
    assert [c.chunk_id for c in reciprocal_rank_fusion([[7], [5]])] == [5, 7]


def test_analysis_stems_and_drops_stopwords() -> None:
    assert analyze("The cells were Dividing rapidly") == ["cell", "divid", "rapid"]


def test_fts_expression_quotes_terms_so_operators_stay_words() -> None:
    assert fts5_match_expression('NEAR "AND" or NOT') == '"near"'
    assert fts5_match_expression("the of and") == ""
