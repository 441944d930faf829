"""The garbage collector's settings for a long-running operator.

Every LIST of pods and every pod watch event allocates thousands of containers that live until
the next read replaces them. With the interpreter's defaults (a young collection every 700 net
allocations) that churn set off a full collection every few passes at 1,000 instances, each
tracing every live object to find almost nothing: reference counting already frees the pods,
and cycles are rare here. In the 1,000-instance rollout benchmark that was about 1.5 of the
operator's 6.2-6.7 ms of CPU per upgraded instance. Rarer collections keep cycles bounded.
"""

from __future__ import annotations

import gc

# Young collections every 20,000 net allocations (one decoded pod is a few hundred), middle and
# full ones after 20 of the previous kind; a full one also still waits for a quarter of the
# long-lived objects to be new, as by default.
THRESHOLDS = (20_000, 20, 20)


def tune_for_operator() -> None:
    """Call once the modules are imported: what exists by then (modules, classes, the API
    client's models) lives as long as the process, so full collections skip it from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
