"""Another writer process for tests/test_feed_order.py: files ``n`` cases on the store
at ``url`` through the intake, then prints their codes, one a line (beside
the log lines, which do not start with the region).

    python -m tests.feed_writer URL PREFIX N
"""

from __future__ import annotations

import asyncio
import sys

from gateway.store import Store
from tests.test_pipeline import text_intake, text_raw
from tests.test_store_round_trips import distinct_text


async def main(url: str, prefix: str, n: int) -> None:
    store = Store.from_url(url)
    await store.start()
    try:
        intake = text_intake(store)
        results = await asyncio.gather(
            *(intake.submit(text_raw(f"{prefix}-{i}", distinct_text(prefix, i)))
              for i in range(n)))
    finally:
        await store.close()
    for result in results:
        print(result.case_code)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
