"""The TCP_NODELAY h11 protocol, for ``uvicorn --http nodelay:NoDelayH11Protocol`` (PYTHONPATH=bench).

It used to be a bench-only diagnostic (docs/benchmarks-journal.md, finding 1); the product now serves
with it (``coalition serve`` passes ``coalition.serving.NoDelayH11Protocol`` for any worker
count), and ``bench/http_ledger.py`` starts uvicorn with the product's protocol by default.
This name stays so that ``--nodelay`` keeps working.
"""

from __future__ import annotations

from coalition.serving import NoDelayH11Protocol

__all__ = ["NoDelayH11Protocol"]
