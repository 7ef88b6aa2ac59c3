"""The garbage collector settled once the gateway has started (docs/operations.md,
"Garbage collection").

CPython's cyclic collector runs a young-generation pass every 700 net allocations of
container objects and, every hundred of those, a full pass over every tracked object:
the ~85,000 objects of the loaded gateway (modules, config, models, aiohttp) scanned
again and again although none of them ever becomes garbage. Measured under
``bench/ingest.py`` that is a pause of tens of milliseconds every few thousand
submissions and ~10 µs of CPU per submission on average.

So, once everything is loaded: one collection, then ``gc.freeze()`` moves every
surviving object out of the collector's sight (it is still freed by reference
counting), and the young generation's threshold is raised so that a request's own
short-lived objects mostly die by reference counting before a pass looks at them.
Cycles are still collected: just less often. Memory stayed bounded in the runs (max RSS
138 → 141-145 MB, docs/operations.md)."""

from __future__ import annotations

import gc

# Net container allocations between young-generation passes (CPython's default: 700).
# One web submission allocates a few hundred; 10,000 is tens of submissions.
GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """Collect once, freeze what survives, raise the young generation's threshold.
    Called at the end of start-up, in each process that serves (every worker of
    ``server.workers`` after its fork)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
