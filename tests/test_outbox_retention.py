"""The outbox (alerts written to disk without a Telegram token) is kept within `notifier.outbox`: the
alerts older than `max_days` go, then over `max_mb` the oldest until 90% of it is left; never the alert
being written, nor a file that is not an alert's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from homesec.contract import Verdict
from notifier_node.settings import NotifierSettings, OutboxSettings
from notifier_node.store import OUTBOX_SCAN_INTERVAL_S, OutboxRetention, Pruned, alert_stem, prune_outbox
from tests.fake_telegram import jpeg_bytes
from tests.test_notifier_delivery import Harness, make_settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


def put(outbox: Path, event_id: str, age: timedelta, size: int = 1000, revisions: int = 0) -> str:
    """An alert as the deliverer writes it (photo, JSON, revisions), written `age` before NOW."""
    stem = alert_stem("door", event_id, NOW - age)
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f"{stem}.jpg").write_bytes(b"j" * size)
    (outbox / f"{stem}.json").write_bytes(b"{}")
    for n in range(1, revisions + 1):
        (outbox / f"{stem}.r{n}.json").write_bytes(b"{}")
    return stem


def stems(outbox: Path) -> set[str]:
    """The alerts in the outbox (a stem holds one dot, in its time)."""
    return {".".join(p.name.split(".")[:2]) for p in outbox.iterdir()}


def test_alerts_older_than_max_days_go_with_their_revisions(tmp_path: Path) -> None:
    old = put(tmp_path, "old", timedelta(days=31), revisions=2)
    recent = put(tmp_path, "recent", timedelta(days=29))
    (tmp_path / "notes.txt").write_text("the household's own file")
    (tmp_path / "20201201T000000Z_door_x.jpg").write_bytes(b"old, but not named as the notifier names")
    assert prune_outbox(tmp_path, 10**9, 30 * DAY, now=NOW) == Pruned(alerts=1, kept_bytes=1002)
    assert not list(tmp_path.glob(f"{old}*"))
    assert len(list(tmp_path.glob(f"{recent}*"))) == 2
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "20201201T000000Z_door_x.jpg").exists()


def test_over_the_budget_the_oldest_go_first_never_the_one_being_written(tmp_path: Path) -> None:
    a = put(tmp_path, "a", timedelta(hours=3))
    b = put(tmp_path, "b", timedelta(hours=2))
    c = put(tmp_path, "c", timedelta(hours=1))
    per_alert = 1002  # photo and JSON
    assert prune_outbox(tmp_path, 3 * per_alert, 30 * DAY, now=NOW).alerts == 0  # it fits
    assert prune_outbox(tmp_path, 3 * per_alert - 1, 30 * DAY, now=NOW) == Pruned(1, 2 * per_alert)
    assert stems(tmp_path) == {b, c}  # a went; b and c fit in 90% of the budget
    assert (
        prune_outbox(tmp_path, 10, 30 * DAY, keep=b, now=NOW).alerts == 1
    )  # b, the oldest, is being written
    assert stems(tmp_path) == {b}
    assert a not in stems(tmp_path)


def test_between_scans_a_running_total_stands_in_for_the_listing(tmp_path: Path) -> None:
    now = [0.0]
    retention = OutboxRetention(tmp_path, OutboxSettings(max_days=30, max_mb=1), clock=lambda: now[0])
    retention.start()
    new = put(tmp_path, "new", timedelta(0))
    stale = put(tmp_path, "stale", timedelta(days=40))  # appears behind the retention's back
    retention.written(tmp_path / f"{new}.jpg")
    assert stems(tmp_path) == {new, stale}  # no scan: not due yet
    now[0] += OUTBOX_SCAN_INTERVAL_S
    retention.written(tmp_path / f"{new}.jpg")
    assert stems(tmp_path) == {new}
    big = put(tmp_path, "big", timedelta(0), size=2 * 1024 * 1024)  # past the budget: at once
    retention.written(tmp_path / f"{big}.jpg")
    assert stems(tmp_path) == {big}


def test_a_missing_outbox_is_nothing_to_prune(tmp_path: Path) -> None:
    assert prune_outbox(tmp_path / "outbox", 10, DAY) == Pruned(0, 0)


def test_the_settings_have_defaults() -> None:
    settings = NotifierSettings()
    assert (settings.outbox.max_days, settings.outbox.max_mb) == (30.0, 500.0)
    assert OutboxSettings(max_mb=1.5).max_bytes == 1572864 and OutboxSettings(max_days=1).max_age_s == DAY


@pytest.mark.parametrize("bad", [{"max_mb": 0}, {"max_days": -1}, {"max_gb": 1}])
def test_the_settings_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        OutboxSettings.model_validate(bad)


def test_the_notifier_keeps_its_outbox_within_the_budget(tmp_path: Path) -> None:
    outbox = tmp_path / "data" / "outbox"
    stale = put(outbox, "stale", timedelta(days=40))  # what an earlier run left
    settings = make_settings(None, outbox=OutboxSettings(max_days=30, max_mb=0.001))  # under one alert
    h = Harness(tmp_path / "data", settings)
    try:
        assert not list(outbox.glob(f"{stale}*"))  # pruned at start
        for n in range(3):
            photo = h.alert(event_id=f"ev{n}", photo=jpeg_bytes(64, 48), verdict=Verdict.UNKNOWN)
            (written,) = outbox.glob("*.jpg")  # the newest alone: over budget, yet never deleted
            assert written.name.endswith(f"_door_ev{n}.jpg") and written.read_bytes() == photo
            assert written.with_suffix(".json").exists()
        assert [d["channel"] for d in h.delivered()] == ["outbox"] * 3
    finally:
        h.close()
