"""Sinks from the operator's flags: each URL with the key from its secret file, or else the
key from the environment. Keys are read once at start and never logged."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from scaleset_operator.notifications.delivery import Sink

KEY_ENV = "SCALESET_OPERATOR_NOTIFY_SECRET"


class SinkConfigError(ValueError):
    """The notification flags do not fit together, or a secret file cannot be read."""


def sinks_from(
    urls: Sequence[str], secret_files: Sequence[str], env: dict[str, str] | None = None
) -> list[Sink]:
    """The Nth secret file signs for the Nth URL (an empty one: unsigned); a single file
    signs for every URL. Without files, `$SCALESET_OPERATOR_NOTIFY_SECRET` is the key."""
    if secret_files and len(secret_files) not in (1, len(urls)):
        raise SinkConfigError(
            f"{len(secret_files)} --notify-secret-file for {len(urls)} --notify-url: "
            "give one per URL, in the same order, or one for all"
        )
    environ = os.environ if env is None else env
    default = environ.get(KEY_ENV, "").encode() or None
    sinks = []
    for n, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            raise SinkConfigError(f"--notify-url must be an http(s) URL, got {url[:40]!r}")
        path = secret_files[0 if len(secret_files) == 1 else n] if secret_files else None
        sinks.append(Sink(url, _read_key(path) if path else default))
    return sinks


def _read_key(path: str) -> bytes | None:
    try:
        # A mounted Secret written by hand often ends in a newline nobody meant as key.
        key = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise SinkConfigError(f"cannot read --notify-secret-file {path}: {exc.strerror}") from None
    return key or None
