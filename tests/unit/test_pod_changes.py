"""Pod changes cross from the pod watch's thread to the event loop in bursts, none lost and in
order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from scaleset_operator.controller.reconcile import Outcome
from scaleset_operator.controller.workers import PodChanges, Workers


class _Recording(Workers):
    def __init__(self) -> None:
        super().__init__(lambda namespace, name: Outcome(None), active=False)
        self.seen: list[tuple[Any, str, bool]] = []

    def pod_changed(self, key: tuple[str, str], name: str, ready: bool) -> None:
        self.seen.append((key, name, ready))


def test_every_change_reaches_the_workers_in_order_with_few_wake_ups() -> None:
    workers = _Recording()
    wakeups = 0

    async def main() -> None:
        nonlocal wakeups
        loop = asyncio.get_running_loop()
        changes = PodChanges(loop, workers)
        original = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakeups
            wakeups += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]

        def watch() -> None:
            for i in range(3000):
                changes.add(("ns", "web"), f"web-{i % 200}", i % 3 == 0)

        thread = threading.Thread(target=watch)
        thread.start()
        for _ in range(1000):
            if not thread.is_alive() and len(workers.seen) >= 3000:
                break
            await asyncio.sleep(0.01)
        thread.join()

    asyncio.run(main())
    assert workers.seen == [(("ns", "web"), f"web-{i % 200}", i % 3 == 0) for i in range(3000)]
    assert wakeups < 3000
