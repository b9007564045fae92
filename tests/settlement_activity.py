"""Random ledger activity for the settlement properties: the operations and the one loop that applies them.

``LEDGER_OPERATIONS`` are hypothesis strategies of earns, redemptions and reversals among
three shops and two members; a test adds its own operations (settle, a policy change, time
passing) and gives :func:`apply_operations` a function for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import strategies as st

from coalition.errors import DomainError

Operation = tuple[Any, ...]

LEDGER_OPERATIONS = [
    st.tuples(st.just("earn"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 200)),
    st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 150)),
    st.tuples(st.just("reverse"), st.integers(0, 60)),
]


async def apply_operations(s: Any, members: list[str], done: list[Any], ops: list[Operation],
                           other: Callable[[Operation], Awaitable[None]]) -> None:
    """Apply ``ops`` a minute apart at shops ``s.a``, ``s.b``, ``s.c``; ``done`` collects the results to reverse.

    A write the ledger refuses (insufficient points, already reversed, points held) is skipped:
    it wrote nothing.
    """
    shops = [s.a, s.b, s.c]
    for op in ops:
        s.clock.advance(minutes=1)
        try:
            if op[0] == "earn":
                done.append(await s.earn(op[3], shops[op[1]], loyalty_id=members[op[2]]))
            elif op[0] == "redeem":
                done.append(await s.redeem(op[3], shops[op[1]], loyalty_id=members[op[2]]))
            elif op[0] == "reverse":
                if done:
                    await s.reverse(done[op[1] % len(done)])
            else:
                await other(op)
        except DomainError:
            pass
