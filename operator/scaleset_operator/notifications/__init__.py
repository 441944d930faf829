"""Webhook notifications of OS upgrades: CloudEvents to configured sinks, at least once.

Design. The notifications are not kept anywhere of their own: they are *derived* from the
ScaleSet's persisted status (`facts`: the current `upgradeRun` and `osUpgradeHistory`), each
fact at a `Position` (run start time, phase, index) in one total order. What each sink has
acknowledged is a `Position` per sink in the ScaleSet annotation `scaleset.dev/notified`
(`ledger`). After every reconcile pass the controller offers the persisted status to the
`Notifier`, which queues every fact past the sink's cursor; a thread per sink posts its
queue's head until the sink answers 2xx (capped exponential back-off in between), then the
cursor advances and a ledger thread writes it to the annotation.

So an operator killed between a fault and its delivery loses nothing: the fault is in status,
the cursor is not past it, and the first pass of the next operator queues it again. The price
is at-least-once: an event delivered just before a crash, whose cursor was not yet written, is
sent again with the same CloudEvent `id` (receivers drop duplicates by it). A sink that sees a
scale set for the first time records a baseline at the status's last fact instead of replaying
its history.

An UpgradeWave is told the same way from its own status (`facts.wave_facts`: each stage a
version reached after its first), with its cursors in its own `scaleset.dev/notified`
annotation. Its versions move on concurrently, so its facts are ordered by when each stage was
reached rather than by version (see `wave_facts`).

Memory is bounded: each sink's queue holds at most `capacity` events and, when full, drops its
oldest non-critical one (counted); faults are never dropped. Nothing here blocks a pass: the
pass only derives and enqueues. This package imports no Kubernetes client; the controller
passes in how to write the annotation and how to post a Warning Event.
"""
