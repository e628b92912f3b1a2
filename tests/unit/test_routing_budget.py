"""The daily spend tracker: what counts as spent, globally and per API key."""

import sqlite3
from pathlib import Path

import pytest

from smallfirst.config import BudgetConfig
from smallfirst.logs.spend import DAY_S, KEYLESS, utc_day
from smallfirst.routing.budget import SpendTracker
from tests.helpers import chat_body, fake_client, fake_settings


def test_estimates_held_for_calls_under_way_count_until_released() -> None:
    spend = SpendTracker(BudgetConfig(daily_usd=1.0, per_key_daily_usd=0.5))
    hold = spend.hold(0.6, "key-a")
    assert spend.exhausted("key-a") == "daily budget $0.5 for this API key spent"
    assert spend.exhausted("key-b") is None
    other = spend.hold(0.4, "key-b")
    assert spend.exhausted("key-b") == "daily budget $1 spent"
    spend.release(hold)
    spend.release(other)
    assert spend.exhausted("key-a") is None


def test_a_new_utc_day_starts_from_zero_but_keeps_what_is_held() -> None:
    spend = SpendTracker(BudgetConfig(daily_usd=1.0))
    today = utc_day() * DAY_S
    spend.add(1.0, None, now=today)
    assert spend.exhausted(None, now=today)
    assert spend.exhausted(None, now=today + DAY_S) is None
    hold = spend.hold(1.0, None)  # a call begun yesterday still ends, and is paid for
    spend.add(0.0, None, now=today + 2 * DAY_S)
    assert spend.exhausted(None, now=today + 2 * DAY_S)
    spend.release(hold)
    assert spend.exhausted(None, now=today + 2 * DAY_S) is None


def test_a_clock_set_back_past_midnight_keeps_the_days_spend() -> None:
    """The day's spend was forgotten when the clock stepped back a second past midnight,
    and again when it came forward: the budget could be spent anew."""
    spend = SpendTracker(BudgetConfig(daily_usd=1.0))
    midnight = utc_day() * DAY_S
    spend.add(1.0, None, now=midnight + 1)
    assert spend.exhausted(None, now=midnight - 1)
    assert spend.exhausted(None, now=midnight + 2)


def test_requests_without_an_api_key_share_one_per_key_budget() -> None:
    """They were counted against none: a per-key budget limited no keyless client, and a
    client whose key had spent its budget went on spending without it."""
    spend = SpendTracker(BudgetConfig(per_key_daily_usd=0.5))
    spend.add(0.3, None)
    assert spend.exhausted(None) is None
    hold = spend.hold(0.2, None)
    assert spend.exhausted(None) == "daily budget $0.5 for requests without an API key spent"
    assert spend.exhausted("key-a") is None
    spend.release(hold)
    spend.others_spent(utc_day(), 0.2, {KEYLESS: 0.2})  # another gateway on the data dir
    assert spend.exhausted(None) is not None


def test_a_gateway_without_keys_keeps_keyless_requests_within_the_per_key_budget(
    tmp_path: Path,
) -> None:
    settings = fake_settings(tmp_path, routing={"budget": {"per_key_daily_usd": 1e-9}})
    client, _ = fake_client(settings)
    with client:
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 200
        refused = client.post("/v1/chat/completions", json=chat_body("big"))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "insufficient_quota"
        kept = client.post("/v1/chat/completions", json=chat_body("auto", route="cloud")).json()
        assert kept["model"] == "tiny"
        assert "requests without an API key spent" in kept["smallfirst"]["reason"]


def test_a_new_utc_day_starts_each_keys_spend_from_zero() -> None:
    """Its own and, until the request log is read again on the new day, what other processes
    spent: no key stays refused today for what it spent yesterday."""
    spend = SpendTracker(BudgetConfig(daily_usd=10.0, per_key_daily_usd=1.0))
    today = utc_day() * DAY_S
    spend.add(1.0, "key-a", now=today)
    spend.others_spent(utc_day(today), 1.0, {"key-b": 1.0})
    assert spend.exhausted("key-a", now=today) is not None
    assert spend.exhausted("key-b", now=today) is not None
    assert spend.exhausted("key-a", now=today + DAY_S) is None
    assert spend.exhausted("key-b", now=today + DAY_S) is None


def test_a_remote_model_refused_for_a_keys_spent_budget_is_logged_saying_whose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row (and `requests`) said only insufficient_quota, and the server's line
    "failed with 429 insufficient_quota: -": the global budget or the key's alike."""
    budget = {"budget": {"per_key_daily_usd": 1e-9}}
    monkeypatch.setenv("SMALLFIRST_API_KEYS", "key-one")  # required off loopback
    client, _ = fake_client(fake_settings(tmp_path, server={"host": "0.0.0.0"}, routing=budget))
    one = {"authorization": "Bearer key-one"}
    with client:
        assert client.post("/v1/chat/completions", json=chat_body("big"), headers=one).is_success
        refused = client.post("/v1/chat/completions", json=chat_body("big"), headers=one)
    assert refused.status_code == 429
    (reason,) = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT route_reason FROM requests WHERE status = 429"
    )
    assert reason == ("daily budget $1e-09 for this API key spent",)
