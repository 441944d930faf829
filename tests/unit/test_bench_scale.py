"""bench.scale's verdict on whether kwok, the simulator, set the pace of an upgrade."""

from __future__ import annotations

from bench.scale import simulator_fell_behind


def test_a_run_where_kwok_kept_up_has_no_verdict() -> None:
    stage = {"kwok_stale_plays_refused_per_pod": 0.0, "pod_watches_closed_by_apiserver": 0}
    assert simulator_fell_behind(stage) is None


def test_a_few_stale_plays_alone_are_not_falling_behind() -> None:
    stage = {"kwok_stale_plays_refused_per_pod": 0.005, "pod_watches_closed_by_apiserver": 0}
    assert simulator_fell_behind(stage) is None


def test_stale_plays_and_closed_watches_are_named_with_their_figures() -> None:
    stage = {"kwok_stale_plays_refused_per_pod": 0.39, "pod_watches_closed_by_apiserver": 15}
    assert simulator_fell_behind(stage) == (
        "0.39 stale plays refused per pod, 15 pod watches closed by kube-apiserver"
    )
    assert simulator_fell_behind({"pod_watches_closed_by_apiserver": 1}) == (
        "1 pod watch closed by kube-apiserver"
    )


def test_results_written_before_those_figures_existed_have_no_verdict() -> None:
    assert simulator_fell_behind({}) is None
