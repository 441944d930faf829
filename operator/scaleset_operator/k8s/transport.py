"""How a request reaches the API server: over `k8s.wire`, or through the ``kubernetes``
client's urllib3 transport where ours does not go (an API server behind a proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, cast

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scaleset_operator.k8s.errors import call
from scaleset_operator.k8s.wire import Timeout, Wire, raise_for_status, usable


class Answer(Protocol):
    """An answer whose status was a success; its body not read yet."""

    def read(self) -> bytes: ...
    def lines(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


class _ClientAnswer:
    def __init__(self, response: Any) -> None:
        self._response = response

    def read(self) -> bytes:
        return cast(bytes, self._response.read())

    def lines(self) -> Iterator[bytes]:
        return iter(self._response.response)

    def close(self) -> None:
        self._response.response.release_conn()


class Transport:
    def __init__(self, api: client.ApiClient, *, pool_size: int, wire: bool = True) -> None:
        self._api = cast(Any, api)  # the stubs predate configuration, param_serialize, call_api
        cfg = self._api.configuration
        self.wire = (
            Wire(cfg, self._api.user_agent, pool_size=pool_size) if wire and usable(cfg) else None
        )

    def open(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout: Timeout,
    ) -> Answer:
        """One request, its answer not read yet; an error status raises (classified)."""
        if self.wire is None:
            return call(
                lambda: self._through_client(method, path, query, body, content_type, timeout)
            )
        wire = self.wire
        data = orjson.dumps(body) if body is not None else None

        def send() -> Answer:
            reply = wire.open(method, path, query, data, content_type, timeout)
            raise_for_status(reply)
            return reply

        return call(send)

    def _through_client(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout: Timeout,
    ) -> Answer:
        method_, url, headers, body_, post = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(
            method_,
            url,
            header_params=headers,
            body=body_,
            post_params=post,
            _request_timeout=timeout,
        )
        if response.status >= 400:
            response.read()
            raise ApiException(http_resp=response)
        return _ClientAnswer(response)
