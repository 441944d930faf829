"""Reading kwok's log for how long pods waited between its restart and start writes, and
the write times behind watch events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import kwok_plays, watch_delay
from scaleset_operator.localcluster import kwokconfig

T0 = kwok_plays.parse_time("2026-12-01T00:00:00Z")


def line(pod: str, at: str, msg: str = "Patch pod", subresource: str = "status") -> str:
    entry = {"time": at, "level": "INFO", "msg": msg, "pod": pod, "node": "kwok-node-0"}
    if subresource:
        entry["subresource"] = subresource
    return json.dumps(entry) + "\n"


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2026-12-01T00:00:00Z", 0.0),
        ("2026-12-01T00:00:01.5Z", 1.5),
        ("2026-12-01T00:00:02.755897594Z", 2.755897594),
        ("2026-12-01T00:01:00.2350238Z", 60.2350238),
    ],
)
def test_times_with_any_number_of_fraction_digits(text: str, offset: float) -> None:
    assert kwok_plays.parse_time(text) - T0 == pytest.approx(offset, abs=1e-6)


def test_a_time_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="not a kwok log time"):
        kwok_plays.parse_time("2026-12-01 00:00:00")


def test_only_successful_status_writes_inside_the_window_count() -> None:
    lines = [
        line("ns/a", "2026-12-01T00:00:01Z"),
        line("ns/a", "2026-12-01T00:00:09Z", subresource=""),  # not a status write
        line("ns/a", "2026-12-01T00:00:10Z", msg="failed to apply stage"),  # refused play
        line("ns/a", "2026-12-01T00:00:11.25Z"),
        line("ns/b", "2026-11-30T23:59:59Z"),  # before the window
        line("ns/b", "2026-12-01T00:00:30Z"),
        line("ns/c", "2026-12-01T00:02:00Z"),  # after it
        "I1201 00:00:05.000000 1 reflector.go:664] watch ended\n",
        "{not json\n",
    ]
    writes = kwok_plays.status_writes(lines, T0, T0 + 60)
    assert writes == {"ns/a": [T0 + 1, T0 + 11.25], "ns/b": [T0 + 30]}


def test_the_gap_is_between_each_pods_first_two_writes() -> None:
    writes = {
        "ns/a": [T0 + 5.0, T0 + 1.0, T0 + 1.7],  # out of order: sorted first
        "ns/b": [T0 + 2.0, T0 + 22.0],
        "ns/c": [T0 + 3.0],  # only its restart in the window: no gap
    }
    assert sorted(kwok_plays.restart_to_start(writes)) == pytest.approx([0.7, 20.0])


def test_several_kwok_logs_are_read_as_one(tmp_path: Path) -> None:
    (tmp_path / "kwok.log").write_text(line("ns/a", "2026-12-01T00:00:01Z"))
    (tmp_path / "kwok-1.log").write_text(
        line("ns/a", "2026-12-01T00:00:03Z") + line("ns/b", "2026-12-01T00:00:04Z")
    )
    (tmp_path / "kube-apiserver.log").write_text(line("ns/b", "2026-12-01T00:00:05Z"))
    paths = kwok_plays.logs_of(tmp_path)
    assert [p.name for p in paths] == ["kwok-1.log", "kwok.log"]
    assert kwok_plays.gaps_in(paths, T0, T0 + 60) == pytest.approx([2.0])


def test_the_default_start_delay_is_the_one_the_stages_use() -> None:
    assert kwokconfig.default_start_delay() == 0.7
    assert '"700ms"' in kwokconfig.stages_text()


def test_a_pods_write_time_is_its_newest_managed_fields_stamp() -> None:
    pod = {
        "metadata": {
            "managedFields": [
                {"manager": "scaleset-operator", "time": "2026-12-01T00:00:05Z"},
                {"manager": "kwok", "subresource": "status", "time": "2026-12-01T00:00:09Z"},
                {"manager": "kube-scheduler"},  # no stamp
            ]
        }
    }
    assert watch_delay.write_time(pod) == T0 + 9
    assert watch_delay.write_time({"metadata": {}}) is None
