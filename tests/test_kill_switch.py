"""Kill switch (issue 6): every threshold, latching, reset, reduce-only, trading days and the audit trail.

Unit tests drive ``KillSwitch`` directly; end-to-end tests run real backtests in-process on a
seeded synthetic market DB and check the results DB (events, denials, fills after the halt).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.execution.kill_switch import (
    KillState,
    KillSwitch,
    KillSwitchConfig,
    TradingDay,
)
from components.execution.records import SignalRow
from tests.helpers import make_market_db, results_rows, run_in_process, synthetic_bars

H = 3_600_000_000  # one hour in microseconds
MIN = 60_000_000


def us(stamp: str) -> int:
    """Return epoch microseconds of an ISO-8601 timestamp (UTC when no offset)."""
    ts = pd.Timestamp(stamp)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return ts.value // 1000


def make_switch(**limits: Any) -> tuple[KillSwitch, list[tuple]]:
    events: list[tuple] = []
    return KillSwitch(KillSwitchConfig(**limits), sink=events.append), events


def buy(ks: KillSwitch, ts: int, position: int = 0, quantity: int = 100) -> Any:
    return ks.check(ts, "buy", quantity, position)


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"max_daily_trades": -1},
            r"^execution\.kill_switch\.max_daily_trades must be a finite number >= 0 or null "
            r"\(off\), was -1; e\.g\. execution\.kill_switch\.max_daily_trades=10$",
        ),
        (
            {"max_daily_loss_usd": float("nan")},
            r"^execution\.kill_switch\.max_daily_loss_usd must be a finite "
            r"number >= 0 or null \(off\), was nan; .*$",
        ),
        (
            {"max_drawdown_pct": 20},
            r"^execution\.kill_switch\.max_drawdown_pct must be a fraction in \(0, 1\), "
            r"was 20; write 0\.2 for 20%$",
        ),
        ({"window_minutes": 0}, r"^execution\.kill_switch\.window_minutes must be > 0, was 0; .*$"),
        (
            {"on_breach": "liquidate"},
            r"^execution\.kill_switch\.on_breach must be one of halt, reduce_only, flatten, was "
            r"'liquidate'; e\.g\. execution\.kill_switch\.on_breach=reduce_only$",
        ),
        (
            {"day_tz": "America/New_Yrok"},
            r"^execution\.kill_switch\.day_tz must be an IANA time zone, was "
            r"'America/New_Yrok'; .*$",
        ),
    ],
)
def test_kill_switch_config_when_value_invalid_then_message_names_key_value_and_fix(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        KillSwitchConfig(**overrides)


# -- max daily trades ----------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [0, 1, 5])
def test_max_daily_trades_when_n_plus_one_th_order_then_exactly_n_pass_and_it_halts(
    limit: int,
) -> None:
    # Arrange
    ks, events = make_switch(max_daily_trades=limit)
    t0 = us("2024-03-08T14:00")
    # Act
    passed = [buy(ks, t0 + i * MIN) is None for i in range(limit)]
    denial = buy(ks, t0 + limit * MIN)
    # Assert
    assert all(passed)
    assert denial == ("MAX_DAILY_TRADES", float(limit + 1), float(limit))
    assert ks.state == KillState.HALTED
    assert [e[2:] for e in events] == [
        (
            "active",
            "halted",
            "MAX_DAILY_TRADES",
            f"order {limit + 1} of the trading day",
            float(limit + 1),
            float(limit),
            "threshold",
        )
    ]


def test_max_daily_trades_when_halted_then_latches_across_days_until_reset_with_reason() -> None:
    # Arrange
    ks, events = make_switch(max_daily_trades=2)
    day1, day2 = us("2024-03-08T10:00"), us("2024-03-09T10:00")
    for i in range(3):
        buy(ks, day1 + i * MIN)
    # Act
    next_day = buy(ks, day2)
    with pytest.raises(ValueError, match=r"^kill switch reset needs a reason, .*$"):
        ks.reset("  ", day2)
    still = buy(ks, day2 + MIN)
    ks.reset("limits reviewed by ops", day2 + 2 * MIN, actor="ops")
    after_reset = [buy(ks, day2 + (3 + i) * MIN) for i in range(3)]
    # Assert
    assert next_day == ("HALTED", None, None) and still == ("HALTED", None, None)
    assert after_reset[:2] == [None, None] and after_reset[2] == ("MAX_DAILY_TRADES", 3.0, 2.0)
    assert [(e[2], e[3], e[4], e[5], e[8]) for e in events] == [
        ("active", "halted", "MAX_DAILY_TRADES", "order 3 of the trading day", "threshold"),
        ("halted", "active", "RESET", "limits reviewed by ops", "ops"),
        ("active", "halted", "MAX_DAILY_TRADES", "order 3 of the trading day", "threshold"),
    ]


def test_max_daily_trades_when_new_trading_day_then_count_restarts() -> None:
    ks, _ = make_switch(max_daily_trades=2)
    t0 = us("2024-03-08T23:58")
    results = [buy(ks, t0), buy(ks, t0 + MIN), buy(ks, t0 + 2 * MIN), buy(ks, t0 + 3 * MIN)]
    assert results == [None, None, None, None]  # 23:58, 23:59 | 00:00, 00:01 UTC
    assert ks.state == KillState.ACTIVE


# Local midnights of America/New_York around both 2024 DST changes, and plain UTC midnight.
DAY_BOUNDARIES = [
    ("America/New_York", "2024-03-10T05:00Z"),  # Sun 10 Mar 00:00 EST (day of 23 h begins)
    (
        "America/New_York",
        "2024-03-11T04:00Z",
    ),  # Mon 11 Mar 00:00 EDT (first day after spring forward)
    ("America/New_York", "2024-11-03T04:00Z"),  # Sun 3 Nov 00:00 EDT (day of 25 h begins)
    ("America/New_York", "2024-11-04T05:00Z"),  # Mon 4 Nov 00:00 EST (first day after fall back)
    ("UTC", "2024-03-10T00:00Z"),
]


@pytest.mark.parametrize(("tz", "midnight"), DAY_BOUNDARIES)
def test_max_daily_trades_when_orders_straddle_local_midnight_then_each_day_passes_exactly_n(
    tz: str, midnight: str
) -> None:
    # Arrange
    n = 3
    ks, events = make_switch(max_daily_trades=n, day_tz=tz)
    boundary = us(midnight)
    before = [boundary - (n - i) for i in range(n)]  # the last n microseconds of the previous day
    after = [boundary + i * MIN for i in range(n + 1)]  # the first minutes of the new day
    # Act
    results_before = [buy(ks, t) for t in before]
    results_after = [buy(ks, t) for t in after]
    # Assert
    assert results_before == [None] * n
    assert results_after[:n] == [None] * n
    assert results_after[n] == ("MAX_DAILY_TRADES", float(n + 1), float(n))
    assert events[0][0] == after[n] and ks.state == KillState.HALTED


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2024-03-10", 23), ("2024-03-11", 24), ("2024-11-03", 25), ("2024-11-04", 24)],
)
def test_trading_day_when_new_york_dst_change_then_day_is_23_or_25_hours(
    day: str, hours: int
) -> None:
    trading_day = TradingDay("America/New_York")
    noon = int(
        dt.datetime.fromisoformat(f"{day}T12:00")
        .replace(tzinfo=ZoneInfo("America/New_York"))
        .timestamp()
        * 1e6
    )
    start, end = trading_day.bounds(noon)
    assert (end - start) == hours * H
    assert trading_day(start) == trading_day(end - 1) == dt.date.fromisoformat(day).toordinal()
    assert (
        trading_day(start - 1) == trading_day(start) - 1
        and trading_day(end) == trading_day(start) + 1
    )


@settings(max_examples=300, deadline=None)
@given(
    tz=st.sampled_from(
        [
            "UTC",
            "America/New_York",
            "Europe/London",
            "Australia/Lord_Howe",
            "America/Havana",
            "America/Santiago",
            "Asia/Kathmandu",
        ]
    ),
    offsets=st.lists(
        st.integers(min_value=-2 * 86_400 * 10**6, max_value=2 * 86_400 * 10**6),
        min_size=1,
        max_size=20,
    ),
    base=st.integers(min_value=us("2000-01-01"), max_value=us("2030-12-31")),
)
def test_trading_day_when_cached_then_matches_local_calendar_date(
    tz: str, offsets: list[int], base: int
) -> None:
    """The cached day bounds never disagree with a direct conversion, even where midnight is skipped."""
    trading_day, zone = TradingDay(tz), ZoneInfo(tz)
    for offset in offsets:
        ts = base + offset
        expected = dt.datetime.fromtimestamp(ts / 1e6, tz=zone).date().toordinal()
        if tz == "UTC":
            expected = ts // (24 * H)
        assert trading_day(ts) == expected


# -- equity thresholds ---------------------------------------------------------------------------
def test_max_drawdown_when_equity_falls_past_fraction_of_peak_then_halts_with_observed_and_limit() -> (
    None
):
    # Arrange
    ks, events = make_switch(max_drawdown_pct=0.1)
    t0 = us("2024-03-08T10:00")
    # Act: peak 1000 -> 900 is exactly 10% (not above the limit), 899 is above
    for i, equity in enumerate([950.0, 1000.0, 920.0, 900.0]):
        ks.on_equity(t0 + i * MIN, equity)
    state_at_limit = ks.state
    ks.on_equity(t0 + 4 * MIN, 899.0)
    # Assert
    assert state_at_limit == KillState.ACTIVE
    assert ks.state == KillState.HALTED and ks.code == "MAX_DRAWDOWN"
    assert (
        events[0][0] == t0 + 4 * MIN
        and events[0][6] == pytest.approx(0.101)
        and events[0][7] == 0.1
    )
    assert buy(ks, t0 + 5 * MIN) == ("HALTED", None, None)


def test_max_daily_loss_when_loss_from_previous_day_close_exceeds_limit_then_halts() -> None:
    """The trading day starts at the last mark of the previous day, so an overnight gap counts."""
    # Arrange
    ks, events = make_switch(max_daily_loss_usd=100.0)
    day1, day2 = us("2024-03-08T20:00"), us("2024-03-09T00:00")
    ks.on_equity(day1, 1000.0)
    ks.on_equity(day1 + H, 1200.0)  # day 1 ends at 1200
    # Act
    ks.on_equity(day2, 1100.0)  # -100: exactly the limit, not above it
    at_limit = ks.state
    ks.on_equity(day2 + MIN, 1099.5)
    # Assert
    assert at_limit == KillState.ACTIVE
    assert ks.state == KillState.HALTED
    assert (
        events[0][4] == "MAX_DAILY_LOSS"
        and events[0][6] == pytest.approx(100.5)
        and events[0][7] == 100.0
    )


def test_max_daily_loss_when_first_day_then_starts_from_first_mark() -> None:
    ks, _ = make_switch(max_daily_loss_usd=50.0)
    t0 = us("2024-03-08T10:00")
    ks.on_equity(t0, 1000.0)
    ks.on_equity(t0 + MIN, 951.0)
    assert ks.state == KillState.ACTIVE
    ks.on_equity(t0 + 2 * MIN, 949.0)
    assert ks.state == KillState.HALTED and ks.code == "MAX_DAILY_LOSS"


def test_reset_when_drawdown_tripped_then_peak_rebased_and_no_immediate_retrip() -> None:
    ks, events = make_switch(max_drawdown_pct=0.1)
    t0 = us("2024-03-08T10:00")
    ks.on_equity(t0, 1000.0)
    ks.on_equity(t0 + MIN, 800.0)
    ks.reset("drawdown reviewed", t0 + 2 * MIN)
    ks.on_equity(t0 + 3 * MIN, 790.0)  # 1.25% below the new peak 800
    assert ks.state == KillState.ACTIVE
    ks.on_equity(t0 + 4 * MIN, 700.0)  # 12.5% below 800
    assert ks.state == KillState.HALTED
    assert [e[4] for e in events] == ["MAX_DRAWDOWN", "RESET", "MAX_DRAWDOWN"]


# -- order rate and position ---------------------------------------------------------------------
def test_max_orders_per_window_when_one_more_order_inside_window_then_denied_and_halts() -> None:
    # Arrange: 3 orders per 10 minutes
    ks, events = make_switch(max_orders_per_window=3, window_minutes=10)
    t0 = us("2024-03-08T10:00")
    # Act
    first = [buy(ks, t0 + i * MIN) for i in (0, 1, 2)]
    slid = buy(ks, t0 + 10 * MIN)  # the order at t0 left the window (t0+10min-10min, t0+10min]
    denied = buy(ks, t0 + 11 * MIN - 1)  # orders at 1, 2, 10 min are still inside
    # Assert
    assert first == [None, None, None] and slid is None
    assert denied == ("MAX_ORDER_RATE", 4.0, 3.0)
    assert events[0][4:8] == ("MAX_ORDER_RATE", "order 4 within 10 min", 4.0, 3.0)


def test_max_position_when_buy_would_exceed_limit_then_denied_and_halts() -> None:
    ks, events = make_switch(max_position_per_symbol=150)
    t0 = us("2024-03-08T10:00")
    assert buy(ks, t0, position=0) is None
    assert ks.check(t0 + MIN, "sell", 100, 100) is None
    assert buy(ks, t0 + 2 * MIN, position=100) == ("MAX_POSITION", 200.0, 150.0)
    assert ks.state == KillState.HALTED and events[0][4] == "MAX_POSITION"


def test_denied_order_when_limit_breached_then_not_counted_as_a_trade() -> None:
    ks, _ = make_switch(max_daily_trades=1, on_breach="reduce_only")
    t0 = us("2024-03-08T10:00")
    assert buy(ks, t0) is None
    assert buy(ks, t0 + MIN, position=100) == ("MAX_DAILY_TRADES", 2.0, 1.0)
    assert ks.state == KillState.REDUCE_ONLY


# -- reduce-only ---------------------------------------------------------------------------------
def test_reduce_only_when_breached_then_only_position_reducing_orders_pass() -> None:
    # Arrange
    ks, events = make_switch(max_daily_trades=1, on_breach="reduce_only")
    t0 = us("2024-03-08T10:00")
    buy(ks, t0)
    buy(ks, t0 + MIN, position=100)  # trips
    # Act
    more = buy(ks, t0 + 2 * MIN, position=100)
    cross = ks.check(t0 + 3 * MIN, "sell", 150, 100)
    reduce = [ks.check(t0 + (4 + i) * MIN, "sell", 50, 100 - 50 * i) for i in range(2)]
    # Assert
    assert more == ("REDUCE_ONLY", 200.0, 100.0)
    assert cross == ("REDUCE_ONLY", 50.0, 100.0)  # selling 150 of 100 would cross to short
    assert reduce == [None, None]  # de-risking is not throttled by the tripped count
    assert ks.blocks("buy", 100, 0) and not ks.blocks("sell", 100, 100)
    assert [e[3] for e in events] == ["reduce_only"]


def test_reduce_only_when_manual_halt_then_halted_and_reset_returns_active() -> None:
    ks, events = make_switch(max_drawdown_pct=0.05, on_breach="reduce_only")
    t0 = us("2024-03-08T10:00")
    ks.on_equity(t0, 1000.0)
    ks.on_equity(t0 + MIN, 900.0)
    ks.activate("ops pressed the button", t0 + 2 * MIN, actor="ops")
    ks.on_equity(t0 + 3 * MIN, 800.0)  # a further breach never lifts halted to reduce_only
    assert ks.state == KillState.HALTED and ks.check(t0 + 4 * MIN, "sell", 100, 100) == (
        "HALTED",
        None,
        None,
    )
    ks.reset("reviewed", t0 + 5 * MIN)
    assert [(e[2], e[3], e[4]) for e in events] == [
        ("active", "reduce_only", "MAX_DRAWDOWN"),
        ("reduce_only", "halted", "MANUAL"),
        ("halted", "active", "RESET"),
    ]


def test_manual_activation_when_active_then_halts_latches_and_records_actor() -> None:
    ks, events = make_switch()
    t0 = us("2024-03-08T10:00")
    ks.activate("", t0, actor="halt_file")
    ks.activate("second press", t0 + 1)  # already halted: no second event
    assert ks.halted and ks.describe() == {
        "state": "halted",
        "mode": "halt",
        "code": "MANUAL",
        "reason": "manual halt",
        "observed": None,
        "limit": None,
        "events": 1,
    }
    assert events[0][0] == t0 and events[0][2:] == (
        "active",
        "halted",
        "MANUAL",
        "manual halt",
        None,
        None,
        "halt_file",
    )
    now_us = int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
    assert abs(events[0][1] - now_us) < 60_000_000  # wall_time is the real clock


def test_reset_when_already_active_then_nothing_recorded() -> None:
    ks, events = make_switch()
    ks.reset("nothing to do", us("2024-03-08"))
    assert events == [] and ks.state == KillState.ACTIVE


# -- end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four symbols of minute bars over ~2 days (with holes): sma_cross trades a few hundred times."""
    path = tmp_path_factory.mktemp("market") / "market.duckdb"
    return make_market_db(path, synthetic_bars(n_symbols=4, n_steps=3000, seed=5))


@pytest.fixture(scope="module")
def reference(market_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run without limits: its records are what every limited run emits until the switch trips."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    code, summary = run_in_process(run_dir, [f"db.path={market_db}", "run.plot=false"])
    assert code == 0 and summary["status"] == "completed"
    return {
        "summary": summary,
        **{t: results_rows(run_dir, t) for t in ("signals", "fills", "equity")},
    }


def run(
    market_db: Path, run_dir: Path, *overrides: str, hook: Any = None
) -> tuple[int, dict[str, Any]]:
    return run_in_process(
        run_dir, [f"db.path={market_db}", "run.plot=false", *overrides], engine_hook=hook
    )


def assert_halted_at(
    run_dir: Path, summary: dict[str, Any], code: str, halt_ts: pd.Timestamp, fills_at_halt: bool
) -> None:
    """The run is halted by ``code`` at ``halt_ts``; nothing filled afterwards; every denial recorded."""
    events = results_rows(run_dir, "kill_switch_events")
    assert summary["status"] == "halted" and summary["kill_switch"]["code"] == code
    assert [(e[0], e[3], e[4]) for e in events] == [(halt_ts, "halted", code)]
    fills = results_rows(run_dir, "fills")
    late = [f for f in fills if f[1] > halt_ts or (f[1] == halt_ts and not fills_at_halt)]
    assert late == []
    denials = results_rows(run_dir, "denials")
    by_code: dict[str, int] = {}
    for d in denials:
        by_code[d[5]] = by_code.get(d[5], 0) + 1
    assert by_code == summary["metrics"]["denied_by_reason"]
    signals = results_rows(run_dir, "signals")
    denied = {d[8] for d in denials}
    assert denied <= {s[0] for s in signals}  # every denial names the signal it stopped
    assert {
        s[0] for s in signals if s[1] >= halt_ts
    } <= denied  # no signal from the halt on got through


def test_max_daily_trades_when_run_end_to_end_then_halts_on_n_plus_one_th_order(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: the 6th signal of the first trading day
    first_day = reference["signals"][0][1].date()
    sixth = [s for s in reference["signals"] if s[1].date() == first_day][5]
    # Act
    code, summary = run(market_db, tmp_path / "run", "execution.kill_switch.max_daily_trades=5")
    # Assert
    assert code == 0
    assert_halted_at(tmp_path / "run", summary, "MAX_DAILY_TRADES", sixth[1], fills_at_halt=True)
    denial = [d for d in results_rows(tmp_path / "run", "denials") if d[5] == "MAX_DAILY_TRADES"]
    assert [(d[6], d[7], d[8]) for d in denial] == [(6.0, 5.0, sixth[0])]
    assert summary["kill_switch"]["observed"] == 6.0 and summary["kill_switch"]["limit"] == 5.0


def test_max_drawdown_when_run_end_to_end_then_halts_at_first_mark_past_the_limit(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: the limit is half the reference run's worst drawdown; find where it is first passed
    equity = pd.DataFrame(reference["equity"], columns=["ts", "cash", "equity"])
    drawdown = 1 - equity["equity"] / equity["equity"].cummax()
    limit = float(drawdown.max()) / 2
    halt_ts = equity["ts"][drawdown > limit].iloc[0]
    # Act
    code, summary = run(
        market_db, tmp_path / "run", f"execution.kill_switch.max_drawdown_pct={limit!r}"
    )
    # Assert
    assert code == 0
    assert_halted_at(tmp_path / "run", summary, "MAX_DRAWDOWN", halt_ts, fills_at_halt=True)


def test_max_daily_loss_when_run_end_to_end_then_halts_at_first_mark_past_the_limit(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: day start = last mark of the previous UTC day (the first mark on day one)
    equity = pd.DataFrame(reference["equity"], columns=["ts", "cash", "equity"])
    day = equity["ts"].dt.floor("D")
    last_of_day = equity.groupby(day)["equity"].last().shift(1)
    start = day.map(last_of_day).fillna(equity["equity"].iloc[0])
    loss = start - equity["equity"]
    limit = float(loss.max()) * 0.6
    halt_ts = equity["ts"][loss > limit].iloc[0]
    # Act
    code, summary = run(
        market_db, tmp_path / "run", f"execution.kill_switch.max_daily_loss_usd={limit!r}"
    )
    # Assert
    assert code == 0
    assert_halted_at(tmp_path / "run", summary, "MAX_DAILY_LOSS", halt_ts, fills_at_halt=True)


def test_max_orders_per_window_when_run_end_to_end_then_halts_on_first_burst(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: first signal with 3 earlier signals in the 30 minutes before it
    window = pd.Timedelta(minutes=30)
    stamps = [s[1] for s in reference["signals"]]
    burst = next(
        i for i, t in enumerate(stamps) if sum(1 for u in stamps[:i] if u > t - window) >= 3
    )
    # Act
    code, summary = run(
        market_db,
        tmp_path / "run",
        "execution.kill_switch.max_orders_per_window=3",
        "execution.kill_switch.window_minutes=30",
    )
    # Assert
    assert code == 0
    assert_halted_at(tmp_path / "run", summary, "MAX_ORDER_RATE", stamps[burst], fills_at_halt=True)


def test_max_position_when_run_end_to_end_then_first_larger_buy_halts(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    code, summary = run(
        market_db, tmp_path / "run", "execution.kill_switch.max_position_per_symbol=99"
    )
    assert code == 0
    assert_halted_at(
        tmp_path / "run", summary, "MAX_POSITION", reference["signals"][0][1], fills_at_halt=True
    )
    assert results_rows(tmp_path / "run", "fills") == []


def test_reduce_only_when_run_end_to_end_then_only_sells_fill_after_the_breach(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Act
    code, summary = run(
        market_db,
        tmp_path / "run",
        "execution.kill_switch.max_daily_trades=5",
        "execution.kill_switch.on_breach=reduce_only",
    )
    # Assert
    events = results_rows(tmp_path / "run", "kill_switch_events")
    assert (
        code == 0
        and summary["status"] == "halted"
        and summary["kill_switch"]["state"] == "reduce_only"
    )
    assert [(e[2], e[3], e[4]) for e in events] == [("active", "reduce_only", "MAX_DAILY_TRADES")]
    late = [f for f in results_rows(tmp_path / "run", "fills") if f[1] > events[0][0]]
    assert late and {f[3] for f in late} == {"sell"}
    codes = {d[5] for d in results_rows(tmp_path / "run", "denials")}
    assert (
        codes <= {"MAX_DAILY_TRADES", "REDUCE_ONLY", "CANCELLED_BY_REDUCE_ONLY"}
        and "REDUCE_ONLY" in codes
    )
    assert summary["open_positions"] == []  # every position was wound down, none opened


def test_manual_activation_when_mid_run_then_nothing_fills_from_that_bar_on(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: halt one step after a signal, while its order waits for the next open
    signal_ts = reference["signals"][40][1]
    stamps = sorted({e[0] for e in reference["equity"]})
    halt_ts = stamps[stamps.index(signal_ts) + 1]

    def hook(engine: Any, step: int, ts: int) -> None:
        if pd.Timestamp(ts, unit="us", tz="UTC") == halt_ts:
            engine.execution.activate_kill_switch("risk desk", ts, actor="test")

    # Act
    code, summary = run(market_db, tmp_path / "run", hook=hook)
    # Assert
    assert code == 0
    assert_halted_at(tmp_path / "run", summary, "MANUAL", halt_ts, fills_at_halt=False)
    cancelled = [
        d for d in results_rows(tmp_path / "run", "denials") if d[5] == "CANCELLED_BY_HALT"
    ]
    assert len(cancelled) >= 1 and all(d[1] == halt_ts for d in cancelled)
    events = results_rows(tmp_path / "run", "kill_switch_events")
    assert (events[0][5], events[0][8]) == ("risk desk", "test")


def test_reset_when_mid_run_then_trading_resumes_and_both_changes_are_recorded(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    stamps = sorted({e[0] for e in reference["equity"]})
    halt_at, reset_at = 500, 900

    def hook(engine: Any, step: int, ts: int) -> None:
        if step == halt_at:
            engine.execution.activate_kill_switch("pause", ts)
        elif step == reset_at:
            engine.execution.reset_kill_switch("resume after review", ts, actor="ops")

    code, summary = run(market_db, tmp_path / "run", hook=hook)

    events = results_rows(tmp_path / "run", "kill_switch_events")
    assert code == 0 and summary["status"] == "completed"
    assert [(e[0], e[2], e[3], e[4], e[8]) for e in events] == [
        (stamps[halt_at], "active", "halted", "MANUAL", "user"),
        (stamps[reset_at], "halted", "active", "RESET", "ops"),
    ]
    fills = [f[1] for f in results_rows(tmp_path / "run", "fills")]
    assert not [t for t in fills if stamps[halt_at] <= t < stamps[reset_at]]
    assert [t for t in fills if t > stamps[reset_at]]
    denials = results_rows(tmp_path / "run", "denials")
    assert denials and all(stamps[halt_at] <= d[1] < stamps[reset_at] for d in denials)


def test_halt_file_when_created_mid_chunk_then_picked_up_within_256_steps(
    market_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: one chunk holds the whole run, so only the every-256-steps check can see the file
    stamps = sorted({e[0] for e in reference["equity"]})
    run_dir = tmp_path / "run"

    def hook(engine: Any, step: int, ts: int) -> None:
        if step == 300:
            (run_dir / "HALT").write_text("ops: stop trading now\n")

    # Act
    code, summary = run(market_db, run_dir, "market.chunk_size=100000", hook=hook)
    # Assert
    assert code == 0
    assert_halted_at(run_dir, summary, "MANUAL", stamps[512], fills_at_halt=False)
    events = results_rows(run_dir, "kill_switch_events")
    assert (events[0][5], events[0][8]) == ("ops: stop trading now", "halt_file")


# -- trading days end to end -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hourly_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hourly bars from 2024-03-08 to 2024-11-08: both New York DST changes, every local midnight."""
    path = tmp_path_factory.mktemp("hourly") / "market.duckdb"
    return make_market_db(
        path, synthetic_bars(n_symbols=3, n_steps=5900, seed=9, holes=False, freq="h")
    )


@pytest.mark.parametrize("tz", ["America/New_York", "UTC"])
def test_max_daily_trades_when_reset_every_new_day_then_exactly_n_pass_per_local_day(
    tz: str, hourly_db: Path, tmp_path: Path
) -> None:
    """The (N+1)-th order of each local trading day is denied and halts; a reset opens the next day."""
    # Arrange: reset at the first bar of each local day, when the switch is halted
    n, zone = 2, ZoneInfo(tz)
    current: dict[str, Any] = {"day": None}

    def reset_each_day(engine: Any, step: int, ts: int) -> None:
        day = dt.datetime.fromtimestamp(ts / 1e6, tz=zone).date()
        if day != current["day"]:
            current["day"] = day
            if engine.execution.kill_switch.halted:
                engine.execution.reset_kill_switch(f"new trading day {day}", ts, actor="ops")

    # Act
    code, _summary = run(
        hourly_db,
        tmp_path / "run",
        "strategy.fast=2",
        "strategy.slow=5",
        f"execution.kill_switch.max_daily_trades={n}",
        f"execution.kill_switch.day_tz={tz}",
        hook=reset_each_day,
    )
    # Assert: per local day, signals 1..N pass, N+1 is MAX_DAILY_TRADES, the rest HALTED
    assert code == 0
    signals = pd.DataFrame(
        results_rows(tmp_path / "run", "signals"),
        columns=list(SignalRow._fields),
    )
    codes = {
        d[8]: d[5]
        for d in results_rows(tmp_path / "run", "denials")
        if not d[5].startswith("CANCELLED")
    }
    signals["code"] = signals["seq"].map(codes).fillna("passed")
    signals["day"] = pd.to_datetime(signals["ts"], utc=True).dt.tz_convert(tz).dt.date
    breached_days = 0
    for day, group in signals.groupby("day"):
        expected = ["passed"] * min(n, len(group)) + (
            ["MAX_DAILY_TRADES"] if len(group) > n else []
        )
        expected += ["HALTED"] * (len(group) - len(expected))
        assert group["code"].tolist() == expected, f"trading day {day}"
        breached_days += len(group) > n
    days = set(signals["day"])
    assert {dt.date(2024, 3, 10), dt.date(2024, 11, 3)} <= days and breached_days >= 50
    events = results_rows(tmp_path / "run", "kill_switch_events")
    assert [e[4] for e in events] == ["MAX_DAILY_TRADES", "RESET"] * (len(events) // 2) + (
        ["MAX_DAILY_TRADES"] if len(events) % 2 else []
    )


# -- audit trail -------------------------------------------------------------------------------------
def test_audit_trail_when_trip_halt_and_reset_then_every_change_and_denial_is_a_row(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange: trip to reduce-only on the 4th order, then ops halt at step 700 and reset at step 900
    def operate(engine: Any, step: int, ts: int) -> None:
        if step == 700:
            engine.execution.activate_kill_switch("ops: unexpected fills", ts, actor="ops")
        elif step == 900:
            engine.execution.reset_kill_switch("ops: reviewed, resume", ts, actor="ops")

    # Act
    code, summary = run(
        market_db,
        tmp_path / "run",
        "execution.kill_switch.max_daily_trades=3",
        "execution.kill_switch.on_breach=reduce_only",
        hook=operate,
    )
    # Assert: the state changes, in order, each with reason, figures and actor
    assert code == 0
    events = results_rows(tmp_path / "run", "kill_switch_events")
    assert [(e[2], e[3], e[4], e[6], e[7], e[8]) for e in events[:3]] == [
        ("active", "reduce_only", "MAX_DAILY_TRADES", 4.0, 3.0, "threshold"),
        ("reduce_only", "halted", "MANUAL", None, None, "ops"),
        ("halted", "active", "RESET", None, None, "ops"),
    ]
    state = "active"
    for event in events:  # one chain of changes, in time order, nothing skipped
        assert event[2] == state and event[3] != state
        state = event[3]
        assert (event[6] is None) == (event[4] in ("MANUAL", "RESET"))
        assert event[6] is None or event[6] > event[7]
    assert (
        state == summary["kill_switch"]["state"] and len(events) == summary["kill_switch"]["events"]
    )
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    assert [e[1] for e in events] == sorted(e[1] for e in events)
    # ... and every change is also a WARNING line in runner.log
    log = (tmp_path / "run" / "runner.log").read_text()
    assert log.count("kill switch active -> reduce_only") + log.count(
        "kill switch reduce_only -> halted"
    ) + log.count("kill switch halted -> active") + log.count(
        "kill switch reduce_only -> active"
    ) == len(events)
    # ... every refused signal is a denial with its code (and figures where a limit was crossed)
    signals, denials = (
        results_rows(tmp_path / "run", "signals"),
        results_rows(tmp_path / "run", "denials"),
    )
    metrics = summary["metrics"]
    refused = [d for d in denials if not d[5].startswith("CANCELLED_BY_")]
    assert metrics["signals_received"] == len(signals) == metrics["signals_accepted"] + len(refused)
    by_code: dict[str, int] = {}
    for d in denials:
        by_code[d[5]] = by_code.get(d[5], 0) + 1
        assert (d[6] is not None and d[7] is not None) == (
            d[5] in ("MAX_DAILY_TRADES", "REDUCE_ONLY")
        )
    assert by_code == metrics["denied_by_reason"]
    assert {"MAX_DAILY_TRADES", "REDUCE_ONLY", "HALTED"} <= set(by_code)
