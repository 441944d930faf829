"""A fact as an HTTP request: a CloudEvent in structured mode, signed with HMAC-SHA256.

Structured mode (`application/cloudevents+json`) puts the attributes (id, type, source,
subject, time) in the body next to the data, so the signature over the body covers them too;
in binary mode they would travel as `ce-*` headers that the signature does not protect.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from scaleset_operator.notifications.facts import Fact
from scaleset_operator.planner.timefmt import parse_stamp

SIGNATURE_HEADER = "X-Scaleset-Signature"
SOURCE_PREFIX = "/apis/scaleset.dev/v1alpha1"


@dataclass(frozen=True)
class ScaleSetRef:
    """The scale set a fact belongs to; its uid keeps event ids unique across re-creations."""

    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> tuple[str, str]:
        """Its cursors' key in the ledger."""
        return (self.namespace, self.name)

    @property
    def source(self) -> str:
        return f"{SOURCE_PREFIX}/namespaces/{self.namespace}/scalesets/{self.name}"

    def about(self) -> dict[str, Any]:
        return {"scaleSet": {"namespace": self.namespace, "name": self.name}}


@dataclass(frozen=True)
class WaveRef:
    """The UpgradeWave a fact belongs to. Cluster-scoped: its ledger key has no namespace,
    which no scale set's key lacks."""

    name: str
    uid: str

    @property
    def key(self) -> tuple[str, str]:
        return ("", self.name)

    @property
    def source(self) -> str:
        return f"{SOURCE_PREFIX}/upgradewaves/{self.name}"

    def about(self) -> dict[str, Any]:
        return {"wave": {"name": self.name}}


Ref = ScaleSetRef | WaveRef


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[str, str]


def event_id(ref: Ref, fact: Fact) -> str:
    """Stable across re-sends, so a receiver can drop duplicates of at-least-once delivery."""
    return f"{ref.uid}/{fact.position.key()}/{fact.kind.value}"


def cloud_event(ref: Ref, fact: Fact) -> CloudEvent:
    attributes: dict[str, object] = {
        "id": event_id(ref, fact),
        "type": fact.kind.value,
        "source": ref.source,
        "subject": ref.name,
        "datacontenttype": "application/json",
    }
    if fact.time:
        attributes["time"] = parse_stamp(fact.time)
    data = {**ref.about(), **fact.data}
    return CloudEvent(attributes, data)


def signature(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, header: str) -> bool:
    """What a receiver does; constant-time, as every HMAC comparison must be."""
    return hmac.compare_digest(signature(key, body), header)


def request_for(ref: Ref, fact: Fact, key: bytes | None) -> Request:
    message = to_structured_event(cloud_event(ref, fact))
    headers = dict(message.headers)
    if key:
        headers[SIGNATURE_HEADER] = signature(key, message.body)
    return Request(message.body, headers)
