"""Privacy guard: find PII in prompts, decide per tier, redact reversibly.

Nothing heavy is imported here; Presidio and spaCy load on the first `inspect`.
"""

from __future__ import annotations

from smallfirst.privacy.detect import (
    DEFAULT_SPACY_MODEL,
    SUPPORTED_ENTITIES,
    Finding,
    PiiDetector,
    shared_detector,
)
from smallfirst.privacy.guard import GuardResult, PrivacyGuard
from smallfirst.privacy.policy import (
    POLICY_ACTIONS,
    PolicyAction,
    PrivacyConfig,
    permitted_tiers,
    raise_if_blocked,
    resolve_action,
    tier_policy,
)
from smallfirst.privacy.redact import (
    Redaction,
    Redactor,
    StreamRestorer,
    audit_summary,
    redact_messages,
    redact_texts,
)

__all__ = [
    "DEFAULT_SPACY_MODEL",
    "POLICY_ACTIONS",
    "SUPPORTED_ENTITIES",
    "Finding",
    "GuardResult",
    "PiiDetector",
    "PolicyAction",
    "PrivacyConfig",
    "PrivacyGuard",
    "Redaction",
    "Redactor",
    "StreamRestorer",
    "audit_summary",
    "permitted_tiers",
    "raise_if_blocked",
    "redact_messages",
    "redact_texts",
    "resolve_action",
    "shared_detector",
    "tier_policy",
]
