import pytest

from voicegw.sip.watchdog import SetupWatchdog


def test_calls_past_their_deadline_come_out_once_oldest_first() -> None:
    watchdog = SetupWatchdog(10.0)
    watchdog.watch(1, now=0.0)
    watchdog.watch(2, now=1.0)
    watchdog.watch(3, now=2.0)
    assert watchdog.next_deadline() == 10.0
    assert watchdog.expired(9.99) == []
    assert watchdog.expired(11.0) == [1, 2]
    assert watchdog.expired(11.0) == []
    assert watchdog.next_deadline() == 12.0 and len(watchdog) == 1


def test_settled_calls_are_forgotten() -> None:
    watchdog = SetupWatchdog(10.0)
    for key in range(5):
        watchdog.watch(key, now=float(key))
    watchdog.settle(0)  # answered
    watchdog.settle(3)  # rejected
    watchdog.settle(3)
    watchdog.settle(99)  # never watched: harmless
    assert watchdog.next_deadline() == 11.0
    assert watchdog.expired(100.0) == [1, 2, 4]
    assert watchdog.next_deadline() is None and len(watchdog) == 0


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="set-up timeout must be positive, got 0"):
        SetupWatchdog(0)
