import pytest

from plantpulse.timefmt import NS_PER_MS, NS_PER_S, format_duration, iso_ms, parse_duration, parse_ts


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("500ms", 500 * NS_PER_MS),
        ("3s", 3 * NS_PER_S),
        ("2m", 120 * NS_PER_S),
        ("1h", 3600 * NS_PER_S),
        ("1h30m", 5400 * NS_PER_S),
        ("1.5s", 1500 * NS_PER_MS),
        (2, 2 * NS_PER_S),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str | int, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "3", "3 s", "s", "3sec", "-1s", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips_common_values() -> None:
    for text in ["250ms", "3s", "1m30s", "2m", "1h2m3s"]:
        assert format_duration(parse_duration(text)) == text


def test_parse_ts_forms_agree() -> None:
    expected = 1767225603 * NS_PER_S + 123 * NS_PER_MS
    assert parse_ts("2026-01-01T00:00:03.123Z") == expected
    assert parse_ts("2026-01-01T08:00:03.123+08:00") == expected
    assert parse_ts("1767225603.123") == pytest.approx(expected, abs=1000)
    assert iso_ms(expected) == "2026-01-01T00:00:03.123Z"


def test_format_duration_rounds_to_milliseconds() -> None:
    assert format_duration(7_988_360_123) == "7.988s"
