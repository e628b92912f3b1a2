"""Policy resolution and the guard's four actions (with a stub detector: no model)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from smallfirst.config_file import load_settings
from smallfirst.errors import PolicyBlocked
from smallfirst.privacy import (
    Finding,
    PiiDetector,
    PrivacyConfig,
    PrivacyGuard,
    permitted_tiers,
    resolve_action,
)
from smallfirst.types import ChatMessage

SECRET_NAME = "Zebulon Quist"
PROMPT = f"Please email {SECRET_NAME} about the invoice."


class StubDetector(PiiDetector):
    """Finds the one name in PROMPT; stands in for Presidio so these tests need no model."""

    def inspect_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        return [_the_name_in(text) for text in texts]


def _the_name_in(text: str) -> list[Finding]:
    if SECRET_NAME not in text:
        return []
    start = text.index(SECRET_NAME)
    return [Finding("PERSON", start, start + len(SECRET_NAME), 0.85)]


def _guard(**config: object) -> PrivacyGuard:
    return PrivacyGuard(PrivacyConfig.model_validate(config), detector=StubDetector())


MESSAGES = [ChatMessage(role="user", content=PROMPT)]
PERSON = [Finding("PERSON", 0, 3, 0.85)]


def test_default_policy_per_tier() -> None:
    config = PrivacyConfig()
    assert resolve_action(config, "edge", PERSON) == "allow"
    assert resolve_action(config, "cloud", PERSON) == "redact"
    assert resolve_action(config, "cloud", []) == "allow"


def test_override_tightens_but_does_not_loosen_unless_allowed() -> None:
    config = PrivacyConfig()
    assert resolve_action(config, "cloud", PERSON, override="block") == "block"
    assert resolve_action(config, "cloud", PERSON, override="allow") == "redact"
    loose = PrivacyConfig(allow_loosening_override=True)
    assert resolve_action(loose, "cloud", PERSON, override="allow") == "allow"


def test_threshold_and_entity_filter() -> None:
    low = [Finding("PERSON", 0, 3, 0.2)]
    assert resolve_action(PrivacyConfig(), "cloud", low) == "allow"
    only_cards = PrivacyConfig(entities=["CREDIT_CARD"])
    assert resolve_action(only_cards, "cloud", PERSON) == "allow"


def test_disabled_guard_allows_everything() -> None:
    assert resolve_action(PrivacyConfig(enabled=False), "cloud", PERSON) == "allow"
    assert _guard(enabled=False).apply(MESSAGES, "cloud").action == "allow"


def test_config_rejects_unknown_keys_entities_and_actions() -> None:
    with pytest.raises(ValidationError):
        PrivacyConfig.model_validate({"enabeld": True})
    with pytest.raises(ValidationError, match="unknown entity types"):
        PrivacyConfig(entities=["SHOE_SIZE"])
    with pytest.raises(ValidationError):
        PrivacyConfig.model_validate({"tier_policy": {"edge": "allow", "onprem": "allow",
                                                      "cloud": "shred"}})  # fmt: skip


def test_allow_sends_messages_unchanged() -> None:
    result = _guard().apply(MESSAGES, "edge")
    assert result.action == "allow"
    assert result.messages == MESSAGES
    assert result.restore("x") == "x"


def test_redact_hides_value_and_restores_answer() -> None:
    result = _guard().apply(MESSAGES, "cloud")
    assert result.action == "redact"
    assert SECRET_NAME not in result.messages[0].text
    assert result.messages[0].text == "Please email <PERSON_1> about the invoice."
    assert result.restore("Sent to <PERSON_1>.") == f"Sent to {SECRET_NAME}."
    assert result.audit == {"PERSON": {"count": 1, "action": "redact"}}


def test_local_only_keeps_request_off_remote_tiers() -> None:
    guard = _guard(tier_policy={"edge": "allow", "onprem": "allow", "cloud": "local_only"})
    findings = guard.inspect(MESSAGES)
    assert guard.permitted_tiers(findings) == ["edge", "onprem"]
    assert guard.apply(MESSAGES, "onprem", findings=findings).action == "allow"
    with pytest.raises(PolicyBlocked) as error:
        guard.apply(MESSAGES, "cloud", findings=findings)
    assert "PERSON" in error.value.message
    assert SECRET_NAME not in error.value.message


def test_local_only_everywhere_keeps_pii_on_the_local_tiers_and_lets_them_answer() -> None:
    """`local_only` for every tier (or a request's override) keeps the PII in the house: the
    local tiers see the request as written, the cloud does not."""
    guard = _guard(tier_policy=dict.fromkeys(("edge", "onprem", "cloud"), "local_only"))
    findings = guard.inspect(MESSAGES)
    assert guard.permitted_tiers(findings) == ["edge", "onprem"]
    assert guard.apply(MESSAGES, "edge", findings=findings).action == "allow"
    assert resolve_action(PrivacyConfig(), "onprem", PERSON, override="local_only") == "allow"


def test_block_names_types_never_values() -> None:
    guard = _guard()
    with pytest.raises(PolicyBlocked) as error:
        guard.apply(MESSAGES, "cloud", override="block")
    assert "PERSON x1" in error.value.message
    assert SECRET_NAME not in str(error.value)
    assert "Zebulon" not in error.value.message
    assert error.value.status == 400
    assert error.value.code == "pii_blocked"


def test_permitted_tiers_with_block_everywhere() -> None:
    config = PrivacyConfig(tier_policy={"edge": "block", "onprem": "block", "cloud": "block"})
    assert permitted_tiers(config, PERSON) == []
    assert permitted_tiers(config, []) == ["edge", "onprem", "cloud"]


def test_a_policy_given_for_one_tier_keeps_the_others_defaults() -> None:
    """SMALLFIRST__PRIVACY__TIER_POLICY__CLOUD=block was refused: "tier_policy lacks tiers
    ['edge', 'onprem']"."""
    settings = load_settings(env={"SMALLFIRST__PRIVACY__TIER_POLICY__CLOUD": "block"})
    assert settings.privacy.tier_policy == {"edge": "allow", "onprem": "allow", "cloud": "block"}
    assert PrivacyConfig(tier_policy={"edge": "local_only"}).tier_policy["cloud"] == "redact"
