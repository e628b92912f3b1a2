"""The daily spend tracker: what counts as spent, globally and per API key."""

from smallfirst.config import BudgetConfig
from smallfirst.logs.spend import DAY_S, utc_day
from smallfirst.routing.budget import SpendTracker


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
