"""Dotted image versions and ISO 8601 durations: the two little languages of the spec."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset_operator.models.durations import (
    ISO8601_DURATION,
    DurationError,
    format_duration,
    parse_duration,
)
from scaleset_operator.models.versions import DOTTED_VERSION, is_dotted_version, version_key

FAST = settings(max_examples=150, deadline=None)

parts = st.lists(st.integers(min_value=0, max_value=999_999_999), min_size=1, max_size=4)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("9", "10"),
        ("1.9", "1.10"),
        ("1.2.9", "1.2.10"),
        ("2016.127.20180613", "2016.127.20180614"),
        ("2016.127.20180613", "2017.1.1"),
        ("1.2", "1.2.0"),  # more parts rank above, so no two texts tie by accident
        ("0.0.0.9", "0.0.1"),
    ],
)
def test_versions_compare_numerically_part_by_part(lower: str, higher: str) -> None:
    assert version_key(lower) < version_key(higher)


@pytest.mark.parametrize("text", ["1", "1.2", "1.2.3", "1.2.3.4", "0", "000000001.2", "999999999"])
def test_dotted_versions_accepted(text: str) -> None:
    assert is_dotted_version(text)


@pytest.mark.parametrize(
    "text", ["", "latest", "1.", ".1", "1..2", "1.2.3.4.5", "v1.2", "1.2-rc1", "1234567890", " 1"]
)
def test_non_dotted_versions_rejected(text: str) -> None:
    assert not is_dotted_version(text)
    with pytest.raises(ValueError, match="dotted numeric"):
        version_key(text)


@FAST
@given(parts, parts)
def test_version_key_orders_like_integer_tuples(a: list[int], b: list[int]) -> None:
    text_a, text_b = ".".join(map(str, a)), ".".join(map(str, b))
    assert re.match(DOTTED_VERSION, text_a)
    assert (version_key(text_a) < version_key(text_b)) == (tuple(a) < tuple(b))
    assert (version_key(text_a) == version_key(text_b)) == (a == b)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0S", timedelta(0)),
        ("PT5M", timedelta(minutes=5)),
        ("PT30S", timedelta(seconds=30)),
        ("PT1H", timedelta(hours=1)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P2DT3H4M5S", timedelta(days=2, hours=3, minutes=4, seconds=5)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1DT", "5M", "PT5", "P1Y", "P1M", "PT-5S", "pt5m", "PT5M ", "P1W"]
)
def test_bad_durations_rejected_with_a_readable_message(text: str) -> None:
    with pytest.raises(DurationError, match="ISO 8601 duration such as PT5M"):
        parse_duration(text)


@FAST
@given(
    st.integers(0, 30),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
def test_parse_reads_every_component(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"P{days}DT{hours}H{minutes}M{seconds}S"
    assert parse_duration(text) == timedelta(
        days=days, hours=hours, minutes=minutes, seconds=seconds
    )


@FAST
@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_whole_seconds_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = format_duration(value)
    assert re.match(ISO8601_DURATION, text)
    assert parse_duration(text) == value


@FAST
@given(st.text(alphabet="PTDHMS0123456789.", max_size=12))
def test_parser_agrees_with_the_crd_pattern(text: str) -> None:
    """The API server checks the regular expression plus the two empty designators; the
    operator must accept exactly what the API server lets through."""
    admitted = re.match(ISO8601_DURATION, text) is not None and text != "P"
    admitted = admitted and not text.endswith("T")
    if admitted:
        parse_duration(text)
    else:
        with pytest.raises(DurationError):
            parse_duration(text)
