"""Profile summaries (py-spy raw stacks, pyinstrument sessions): time by layer and by function."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

Frame = tuple[str, str]  # (function, file)


Samples = list[tuple[list[Frame], float]]  # root-first stacks with a weight (seconds or sample counts)


LAYERS = [  # (layer, substring of the file path); the first match wins
    ("coalition.ledger", "coalition/ledger/"),
    ("coalition.graphql", "coalition/graphql/"),
    ("coalition (other)", "coalition/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("aiosqlite/sqlite3", "/aiosqlite/"),
    ("graphql-core", "/graphql/"),
    ("graphene", "/graphene/"),
    ("aiodataloader", "aiodataloader"),
    ("starlette", "/starlette/"),
    ("uvicorn+h11", "/uvicorn/"),
    ("uvicorn+h11", "/h11/"),
    ("uvicorn+h11", "/httptools/"),
    ("json", "/json/"),
    ("asyncio", "/asyncio/"),
    ("asyncio", "selectors.py"),
]


def layer_of(frame: Frame) -> str:
    _function, path = frame
    path = "/" + path.lstrip("/")  # py-spy shortens paths to "sqlalchemy/sql/base.py"
    for layer, needle in LAYERS:
        if needle in path:
            return layer
    if path in ("/", "/<built-in>") or path.startswith("/<"):
        return "C builtins"
    return "other python"


def is_idle(stack: list[Frame]) -> bool:
    """The event loop waiting for I/O (pyinstrument records it; py-spy leaves idle samples out)."""
    if not stack:
        return False
    function, path = stack[-1]
    return function.rsplit(".", 1)[-1] in ("poll", "select") and (path.endswith("selectors.py") or "built-in" in path)


def summarize_stacks(samples: Samples, *, top: int = 15, key_functions: tuple[str, ...] = ()) -> str:
    """Self time by layer, inclusive time by layer, chosen functions inclusive, and the top self-time functions."""
    busy = [(stack, w) for stack, w in samples if stack and not is_idle(stack)]
    total = sum(w for _, w in samples) or 1.0
    cpu = sum(w for _, w in busy) or 1.0
    lines = [f"weight: {total:g} (s or samples); busy (not waiting in epoll) {cpu / total:.0%} of the profiled time; "
             "percentages below are of busy time"]

    self_layer: Counter[str] = Counter()
    incl_layer: Counter[str] = Counter()
    incl_function: Counter[str] = Counter()
    self_function: Counter[str] = Counter()
    for stack, w in busy:
        leaf = stack[-1]
        # A C function's self time belongs to the nearest Python layer that called it.
        owner = next((layer_of(f) for f in reversed(stack) if layer_of(f) != "C builtins"), "C builtins")
        self_layer[owner] += w
        self_function[f"{leaf[0]} ({Path(leaf[1]).name or leaf[1]})"] += w
        for layer in {layer_of(f) for f in stack}:
            incl_layer[layer] += w
        for key in {k for k in key_functions for f in stack if key_matches(f[0], k)}:
            incl_function[key] += w

    def table(title: str, counter: Counter[str], n: int) -> None:
        lines.append(f"\n{title}")
        for name, w in counter.most_common(n):
            lines.append(f"  {w / cpu:6.1%}  {name}")

    table("self time by layer (C calls charged to their Python caller's layer):", self_layer, 20)
    table("inclusive time by layer (a sample counts once for every layer on its stack):", incl_layer, 20)
    if key_functions:
        table("inclusive time of key functions:", incl_function, len(key_functions))
    table(f"top {top} functions by self time:", self_function, top)
    return "\n".join(lines)


def summarize_pyinstrument(session: Any, *, top: int = 15) -> str:
    samples: Samples = []
    for stack, seconds in session.frame_records:
        frames = []
        for identifier in stack:
            # "function\x00file\x00line\x01cClass\x01l..." -> ("Class.function", file), as py-spy names them
            parts = identifier.split("\x00")
            attributes = parts[2].split("\x01")[1:] if len(parts) > 2 else []
            owner = next((a[1:] for a in attributes if a.startswith("c")), None)
            frames.append((f"{owner}.{parts[0]}" if owner else parts[0], parts[1] if len(parts) > 1 else ""))
        samples.append((frames, seconds))
    return summarize_stacks(samples, top=top, key_functions=LEDGER_KEY_FUNCTIONS)


# Names as the profilers spell them: py-spy says "DefiningClass.method" ("PurchaseOperations.earn"),
# pyinstrument "ClassOfSelf.method" ("Ledger.earn"); "*.method" matches the method on any class.
LEDGER_KEY_FUNCTIONS = (
    "*.earn", "*.redeem", "request_hash", "Database.transaction", "insert_entry", "*.credit", "*.debit",
    "*.add_lot", "add_postings", "open_lots", "move_lot_points", "add_allocations", "member_from_row",
    "*._compile_w_cache", "*._generate_cache_key", "greenlet_spawn", "*._prepare_and_execute",
)


HTTP_KEY_FUNCTIONS = (
    "RequestResponseCycle.run_asgi", "H11Protocol.data_received", "GraphQLEndpoint.handle",
    "create_app.<locals>.context_factory", "Authenticator.authenticate", "GraphQLEndpoint._post_params",
    "GraphQLEndpoint._run", "execute", "*.mutate", "*.perform",
    "ExecutionContext.complete_value", "GraphQLEndpoint._respond", "Response.__call__",
    *LEDGER_KEY_FUNCTIONS,
)


def key_matches(name: str, key: str) -> bool:
    if key.startswith("*."):
        return "." in name and name.rsplit(".", 1)[1] == key[2:]
    return name == key


def read_pyspy_raw(path: Path) -> Samples:
    """py-spy ``--format raw`` (collapsed stacks: ``f (file:line);g (file:line) count``)."""
    samples: Samples = []
    for line in path.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text:
            continue
        frames = []
        for part in stack_text.split(";"):
            match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", part)
            frames.append((match.group(1), match.group(2)) if match else (part, ""))
        samples.append((frames, float(count)))
    return samples
