"""The request-level guard the service calls: inspect messages, tell the router which tiers
are allowed, and apply the tier's policy (allow, redact, local_only, block)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from smallfirst.errors import PolicyBlocked
from smallfirst.privacy.detect import Finding, PiiDetector, shared_detector
from smallfirst.privacy.identifiers import (
    CHECKED_TYPES,
    COUNTED_IN_NAMES,
    UNREDACTABLE_NAMES,
    names_someone,
)
from smallfirst.privacy.policy import (
    LOCAL_TIERS,
    PolicyAction,
    PrivacyConfig,
    permitted_tiers,
    raise_if_blocked,
    relevant_findings,
    resolve_action,
)
from smallfirst.privacy.redact import (
    Redaction,
    StreamRestorer,
    audit_summary,
    redact_messages,
    with_repeats,
)
from smallfirst.types import ChatMessage, Tier

MessageFindings = list[list[Finding]]


@dataclass
class GuardResult:
    """What to send upstream, and how to undo the redaction in the answer."""

    action: PolicyAction
    messages: list[ChatMessage]
    audit: dict[str, dict[str, int | str]] = field(default_factory=dict)
    redaction: Redaction | None = None
    # The answer is JSON (a response_format asked for it): its placeholders are inside JSON
    # strings, where a value with a line break or a quote must go in escaped.
    json_answer: bool = False

    def restore(self, text: str, *, in_json_string: bool = False) -> str:
        return (
            self.redaction.restore(text, in_json_string=in_json_string) if self.redaction else text
        )

    def stream_restorer(self, *, in_json_string: bool = False) -> StreamRestorer:
        return StreamRestorer(self.redaction or Redaction(), in_json_string=in_json_string)


class PrivacyGuard:
    """One per process; safe to share between threads (the detector locks its analyzer)."""

    def __init__(self, config: PrivacyConfig, detector: PiiDetector | None = None) -> None:
        self.config = config
        self.detector = detector or shared_detector(
            config.spacy_model, tuple(config.entities), config.score_threshold
        )

    def inspect(self, messages: Sequence[ChatMessage]) -> MessageFindings:
        """Findings per message (offsets into `message.text`), filtered by the config."""
        return self.inspect_with_names(messages, ())[0]

    def inspect_with_names(
        self, messages: Sequence[ChatMessage], unredactable_names: Sequence[str]
    ) -> tuple[MessageFindings, list[Finding]]:
        """Findings per message, and the PII in names that must go upstream as they are
        (function and property names, schema patterns: `identifiers.py` says what counts
        there), read in the same pass. The names come as text to read
        (`identifier_as_text`, `pattern_as_text`)."""
        if not self.config.enabled:
            return [[] for _ in messages], []
        texts = [message.text for message in messages]
        names = list(unredactable_names)
        found = [
            relevant_findings(self.config, findings)
            for findings in self.detector.inspect_many([*texts, *names])
        ]
        findings, in_names = found[: len(texts)], found[len(texts) :]
        if not names:
            return findings, []
        checked = [[f for f in per_name if f.entity_type in CHECKED_TYPES] for per_name in in_names]
        with_values_found_elsewhere = with_repeats([*texts, *names], [*findings, *checked])
        counted = [
            f
            for name, per_name in zip(names, with_values_found_elsewhere[len(texts) :], strict=True)
            for f in per_name
            if f.entity_type in COUNTED_IN_NAMES and names_someone(f.entity_type, f.value_in(name))
        ]
        return findings, counted

    def permitted_tiers(
        self,
        findings: MessageFindings,
        override: PolicyAction | None = None,
        *,
        unredactable: Sequence[Finding] = (),
    ) -> list[Tier]:
        """`unredactable`: PII in names that must go as they are (`inspect_with_names`)."""
        return permitted_tiers(
            self.config,
            [*_flatten(findings), *unredactable],
            override,
            redactable=not unredactable,
        )

    def apply(
        self,
        messages: Sequence[ChatMessage],
        tier: Tier,
        *,
        override: PolicyAction | None = None,
        findings: MessageFindings | None = None,
        unredactable: Sequence[Finding] = (),
        numbered_first: Sequence[int] = (),
    ) -> GuardResult:
        """Apply the policy for `tier`. Raises `PolicyBlocked` for `block`, and for
        `local_only` when `tier` is remote (route to a local tier instead). `unredactable`:
        PII in names that go as they are, which `redact` cannot hide (`local_only` then).
        `numbered_first`: the messages whose values get the first placeholders."""
        if findings is None:
            findings = self.inspect(messages)
        flat = [*_flatten(findings), *unredactable]
        action = resolve_action(self.config, tier, flat, override, redactable=not unredactable)
        raise_if_blocked(action, flat)
        if action == "local_only" and tier not in LOCAL_TIERS:
            kinds = ", ".join(sorted({f.entity_type for f in flat}))
            where = f" ({UNREDACTABLE_NAMES})" if unredactable else ""
            raise PolicyBlocked(
                f"privacy policy keeps this request on local tiers: it contains {kinds}{where}"
            )
        if action == "redact":
            redacted, redaction = redact_messages(messages, findings, numbered_first=numbered_first)
            return GuardResult(action, redacted, audit_summary(flat, "redact"), redaction)
        return GuardResult(action, list(messages), audit_summary(flat, action))


def _flatten(findings: MessageFindings) -> list[Finding]:
    return [finding for per_message in findings for finding in per_message]
