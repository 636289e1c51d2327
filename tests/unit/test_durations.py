"""The one duration formatter (credd.durations), as a table."""

from __future__ import annotations

import pytest

from credd.durations import format_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (7, "7s"),
        (59.9, "59s"),
        (60, "1m"),
        (249, "4m09s"),
        (900, "15m"),
        (3599, "59m59s"),
        (3600, "1h"),
        (3900, "1h05m"),
        (3959, "1h05m"),  # seconds dropped once there are hours
        (5400, "1h30m"),
        (43_200, "12h"),
        (86_399, "23h59m"),
        (86_400, "1d"),
        (129_600, "1d12h"),
        (180_000, "2d02h"),
        (604_800, "7d"),
        (-90, "-1m30s"),
        (-3600, "-1h"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
