"""What to do when a prompt holds PII: `allow | redact | local_only | block`, per tier, with
an optional per-request override."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from smallfirst.config_section import ConfigSection
from smallfirst.errors import PolicyBlocked
from smallfirst.privacy.detect import (
    DEFAULT_SCORE_THRESHOLD,
    DEFAULT_SPACY_MODEL,
    SUPPORTED_ENTITIES,
    Finding,
)
from smallfirst.types import TIERS, Tier

PolicyAction = Literal["allow", "redact", "local_only", "block"]
POLICY_ACTIONS: tuple[PolicyAction, ...] = ("allow", "redact", "local_only", "block")
LOCAL_TIERS: tuple[Tier, ...] = ("edge", "onprem")

# Order of strictness; a request may tighten its tier's policy, loosening needs config consent.
_STRICTNESS: dict[PolicyAction, int] = {"allow": 0, "redact": 1, "local_only": 2, "block": 3}


def _default_tier_policy() -> dict[Tier, PolicyAction]:
    return {"edge": "allow", "onprem": "allow", "cloud": "redact"}


class PrivacyConfig(ConfigSection):
    """The `privacy:` section of the settings tree."""

    enabled: bool = True
    tier_policy: dict[Tier, PolicyAction] = Field(default_factory=_default_tier_policy)
    entities: list[str] = Field(default_factory=lambda: list(SUPPORTED_ENTITIES))
    score_threshold: float = Field(default=DEFAULT_SCORE_THRESHOLD, ge=0.0, le=1.0)
    allow_loosening_override: bool = False
    spacy_model: str = DEFAULT_SPACY_MODEL

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SUPPORTED_ENTITIES))
        if unknown:
            raise ValueError(
                f"unknown entity types {unknown}; supported: {', '.join(SUPPORTED_ENTITIES)}"
            )
        return value

    @field_validator("tier_policy", mode="before")
    @classmethod
    def _over_the_defaults(cls, value: Any) -> Any:
        """A tier not named keeps its default policy (cloud: redact): naming one, as
        SMALLFIRST__PRIVACY__TIER_POLICY__CLOUD=block does, was refused for lacking the others."""
        return {**_default_tier_policy(), **value} if isinstance(value, dict) else value


def relevant_findings(config: PrivacyConfig, findings: Iterable[Finding]) -> list[Finding]:
    """Findings of the configured types at or above the configured score."""
    wanted = set(config.entities)
    return [f for f in findings if f.entity_type in wanted and f.score >= config.score_threshold]


def resolve_action(
    config: PrivacyConfig,
    tier: Tier,
    findings: Sequence[Finding],
    override: PolicyAction | None = None,
    *,
    redactable: bool = True,
) -> PolicyAction:
    """The action for a request bound to `tier`. No relevant PII (or guard disabled) means
    `allow`; an override may tighten the tier's policy, and loosen it only if configured.
    `redactable` is False when some of the PII is where a placeholder would break the request
    (a function name): `redact` cannot hide it, so the request stays local instead."""
    if not config.enabled or not relevant_findings(config, findings):
        return "allow"
    action = tier_policy(config, tier, override)
    if action == "redact" and not redactable:
        action = "local_only"
    if action == "local_only" and tier in LOCAL_TIERS:
        return "allow"
    return action


def tier_policy(
    config: PrivacyConfig, tier: Tier, override: PolicyAction | None = None
) -> PolicyAction:
    """`tier`'s policy for one request: its override may tighten it, and loosen it only if
    configured."""
    action = config.tier_policy[tier]
    if override is not None and override not in POLICY_ACTIONS:
        raise ValueError(f"unknown privacy policy {override!r}; use one of {POLICY_ACTIONS}")
    if override is not None and (
        _STRICTNESS[override] >= _STRICTNESS[action] or config.allow_loosening_override
    ):
        action = override
    return action


def permitted_tiers(
    config: PrivacyConfig,
    findings: Sequence[Finding],
    override: PolicyAction | None = None,
    *,
    redactable: bool = True,
) -> list[Tier]:
    """Tiers this request may be sent to (for the router): those whose action is neither
    `block` nor `local_only`."""
    return [
        tier
        for tier in TIERS
        if resolve_action(config, tier, findings, override, redactable=redactable)
        not in ("block", "local_only")
    ]


def entity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    return dict(sorted(Counter(f.entity_type for f in findings).items()))


def raise_if_blocked(action: PolicyAction, findings: Sequence[Finding]) -> None:
    """Raise `PolicyBlocked` naming the entity types (never the values)."""
    if action != "block":
        return
    summary = ", ".join(f"{kind} x{count}" for kind, count in entity_counts(findings).items())
    raise PolicyBlocked(f"request blocked by privacy policy: it contains {summary}")
