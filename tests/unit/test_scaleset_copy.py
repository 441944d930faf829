"""The watch's copy of a ScaleSet stands in for a GET only when it is the version this operator
last read or wrote."""

from __future__ import annotations

from typing import Any

from scaleset_operator.controller.scaleset_copy import ScaleSetCopy

KEY = ("ns", "web")


def obj(version: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "resourceVersion": version}, "spec": spec}


def test_the_watched_object_is_used_once_it_is_the_version_last_read() -> None:
    copy = ScaleSetCopy()
    copy.observe(KEY, obj("5"))
    assert copy.get(KEY) is None, "never read: nothing known to be the latest"
    copy.known(KEY, obj("5"))
    assert copy.get(KEY) == obj("5")


def test_a_change_by_someone_else_sends_the_pass_to_the_api() -> None:
    copy = ScaleSetCopy()
    copy.known(KEY, obj("5"))
    copy.observe(KEY, obj("5"))
    copy.observe(KEY, obj("7", paused=True))  # a user's edit, delivered by the watch
    assert copy.get(KEY) is None
    copy.known(KEY, obj("7", paused=True))  # the pass's GET
    assert copy.get(KEY) == obj("7", paused=True)


def test_our_write_is_trusted_once_the_watch_delivers_it() -> None:
    copy = ScaleSetCopy()
    copy.known(KEY, obj("5"))
    copy.observe(KEY, obj("5"))
    copy.known(KEY, obj("6"))  # our status write's answer
    assert copy.get(KEY) is None, "the watch has not delivered our write yet"
    copy.observe(KEY, obj("6"))
    assert copy.get(KEY) == obj("6")


def test_a_refused_write_or_a_deletion_forgets_what_was_known() -> None:
    copy = ScaleSetCopy()
    copy.known(KEY, obj("5"))
    copy.observe(KEY, obj("5"))
    copy.distrust(KEY)
    assert copy.get(KEY) is None
    copy.known(KEY, obj("5"))
    copy.forget(KEY)
    copy.known(KEY, obj("5"))
    assert copy.get(KEY) is None, "nothing watched since the deletion"
    copy.known(KEY, {"metadata": {}})
    copy.observe(KEY, obj("5"))
    assert copy.get(KEY) is None, "an answer without a version says nothing"


def test_the_echo_of_a_progress_write_is_known_as_ours_until_forgotten() -> None:
    copy = ScaleSetCopy()
    copy.wrote_progress(KEY, "8")
    assert copy.is_idle_echo(KEY, "8")
    assert not copy.is_idle_echo(KEY, "9"), "a later version is someone else's change"
    assert not copy.is_idle_echo(KEY, None)
    assert not copy.is_idle_echo(("ns", "db"), "8")
    copy.forget(KEY)
    assert not copy.is_idle_echo(KEY, "8")
