"""Stored Responses API answers (`store`, `previous_response_id`, `GET /v1/responses/{id}`):
a SQLite file of their own in the data dir, `responses.db`.

Not the request log: that one is read by `stats`, the dashboard and the daily budgets, keeps
text only with `log_prompts`, and is written in batches 0.2 s late; a stored response holds
the whole conversation (values and all) for the client that asked for it to be kept, must be
readable at once by its next turn, and is deleted by that client or after its own retention.
"""

from smallfirst.stored_responses.store import (
    RESPONSES_FILE,
    ResponseStore,
    StoredResponse,
    StoredResponsesUnavailable,
)

__all__ = ["RESPONSES_FILE", "ResponseStore", "StoredResponse", "StoredResponsesUnavailable"]
