"""The static network map in the reader's language, drawn when first asked for and kept with its run.

``coalition analyze`` draws the map once, in English (``map.png`` / ``map.svg``), and stores the
drawn layout as data (the ``network`` scope's ``map``). A reader in another language gets the
same picture with the title and legend in their words: drawn from that layout the first time
anyone asks for (run, language, format), then stored beside the run as scope
``map.<language>.<format>`` so every later request, in any process, reads bytes instead of
spending a second of CPU. The copies go when their run goes (``store.KEEP_RUNS``); a new run
starts afresh. Within a process one drawing per key runs at a time; two processes may draw the
same key once each, and the unique index keeps one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from coalition.network.mapwords import Format, MapWords
from coalition.network.store import MAP_SCOPES, NETWORK_SCOPE, InsightStore, Stored

Names = Callable[[Sequence[int]], Awaitable[Mapping[int, str]]]
"""Merchant names by id (the map labels the biggest merchants)."""


def language_scope(fmt: Format, language: str) -> str:
    return f"map.{language}.{fmt}"


class MapsInLanguages:
    """Serves the newest run's map in the reader's language; see the module docstring."""

    def __init__(self, store: InsightStore) -> None:
        self.store = store
        self._drawing: dict[str, asyncio.Lock] = {}

    async def latest(self, fmt: Format, words: MapWords, names: Names) -> tuple[Stored, bytes] | None:
        """``(run, bytes)`` of the newest run that drew a map, in ``words.language``; None before any."""
        found = await self.store.latest_blob(MAP_SCOPES[fmt])
        if found is None or words.language == "en":
            return found  # the run drew it in English
        stored, _ = found
        scope = language_scope(fmt, words.language)
        lock = self._drawing.setdefault(scope, asyncio.Lock())
        async with lock:  # a crowd asking for a new run's map at once draws it once
            kept = await self.store.run_result(stored.run_id, scope)
            if kept is not None and kept[1] is not None:
                return stored, kept[1]
            network = await self.store.run_result(stored.run_id, NETWORK_SCOPE)
            layout = (network[0] or {}).get("map") if network is not None else None
            if not layout:
                return found  # a run from before layouts were stored: its English map is all there is
            labels = await names([int(node[0]) for node in layout["nodes"]])
            from coalition.network.netmap import render_stored_map  # matplotlib only when drawing

            drawn = await asyncio.to_thread(render_stored_map, layout, fmt, labels, words)
            await self.store.add_blob(stored.run_id, scope, drawn)
            return stored, drawn
