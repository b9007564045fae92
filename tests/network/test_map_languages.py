"""The static network map in the reader's language: drawn from the run's stored layout the first time a
language asks, then kept with the run (one drawing per run, language and format, across processes)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import pytest

from coalition.network.map_languages import MapsInLanguages, language_scope
from coalition.network.mapwords import MapWords
from coalition.network.netmap import graph_of_layout, render_stored_map
from coalition.network.store import NETWORK_SCOPE, InsightStore

LAYOUT = {"nodes": [[1, 0.1, 0.2, 0, 40], [2, -0.5, 0.3, 1, 25], [3, 0.5, -0.3, 1, 30], [4, -0.2, -0.6, 0, 5]],
          "edges": [[1, 2, 3.0], [2, 3, 1.0], [1, 4, 2.0]]}
NAMES = {1: "Café Ålborg", 2: "קפה טוב", 3: "Rīgas maize", 4: "Bar"}
HEBREW = MapWords(title="מפת הרשת", legend_title="גודל: לקוחות; קווים: לקוחות משותפים", community="קהילה {n}",
                  language="he", rtl=True)


def texts_of(svg: bytes) -> list[str]:
    """The words drawn in an SVG (matplotlib writes each text as a comment beside its glyph paths)."""
    return re.findall(r"<!-- (.*?) -->", svg.decode())


class Names:
    def __init__(self) -> None:
        self.asked = 0

    async def __call__(self, ids: Sequence[int]) -> dict[int, str]:
        self.asked += 1
        await asyncio.sleep(0)
        return {i: NAMES[i] for i in ids}


async def stored_run(store: InsightStore, layout: dict[str, Any] | None = LAYOUT) -> int:
    run_id = await store.start_run({})
    await store.finish_run(run_id, {NETWORK_SCOPE: {"map": layout}}, {"map.svg": b"<svg>english</svg>",
                                                                     "map.png": b"\x89PNG english"}, {})
    return run_id


def test_the_stored_layout_draws_the_same_graph_again() -> None:
    graph, positions = graph_of_layout(LAYOUT)
    assert sorted(graph.nodes) == [1, 2, 3, 4]
    assert graph.nodes[2] == {"volume": 25, "community": 1}
    assert graph[1][2]["weight"] == 3.0 and graph.number_of_edges() == 3
    assert list(positions[3]) == [0.5, -0.3]


def test_hebrew_words_are_drawn_with_glyphs_of_the_font() -> None:
    # filterwarnings = error: a glyph missing from the font ("Glyph ... missing from font(s)") fails here
    svg = render_stored_map(LAYOUT, "svg", NAMES, HEBREW)
    png = render_stored_map(LAYOUT, "png", NAMES, HEBREW)
    drawn = texts_of(svg)
    assert {"מפת הרשת", "גודל: לקוחות; קווים: לקוחות משותפים", "קהילה 1", "קהילה 2", "קפה טוב"} <= set(drawn)
    assert png.startswith(b"\x89PNG")
    english = texts_of(render_stored_map(LAYOUT, "svg", NAMES, MapWords()))
    assert {"Network map", "Size: customers; lines: shared customers", "Community 1"} <= set(english)


async def test_a_language_is_drawn_once_per_run_and_kept_with_it(db: Any) -> None:
    store = InsightStore(db)
    run_id = await stored_run(store)
    names = Names()
    maps = MapsInLanguages(store)

    english = await maps.latest("svg", MapWords(), names)
    assert english is not None and english[1] == b"<svg>english</svg>" and names.asked == 0  # the run's own

    crowd = await asyncio.gather(*(maps.latest("svg", HEBREW, names) for _ in range(5)))
    assert names.asked == 1  # drawn once for the crowd
    assert all(found is not None and found[1] == crowd[0][1] for found in crowd)  # type: ignore[index]
    assert "מפת הרשת" in texts_of(crowd[0][1])  # type: ignore[index]
    kept = await store.run_result(run_id, language_scope("svg", "he"))
    assert kept is not None and kept[1] == crowd[0][1]  # type: ignore[index]

    another_process = MapsInLanguages(store)
    again = await another_process.latest("svg", HEBREW, names)
    assert again is not None and again[1] == crowd[0][1] and names.asked == 1  # read, not drawn  # type: ignore[index]
    png = await another_process.latest("png", HEBREW, names)
    assert png is not None and png[1].startswith(b"\x89PNG") and names.asked == 2  # each format once

    newer = await stored_run(store)
    fresh = await maps.latest("svg", HEBREW, names)
    assert fresh is not None and fresh[0].run_id == newer and names.asked == 3  # a new run starts afresh


async def test_a_run_without_a_stored_layout_serves_its_english_map(db: Any) -> None:
    store = InsightStore(db)
    await stored_run(store, layout=None)
    names = Names()
    found = await MapsInLanguages(store).latest("svg", HEBREW, names)
    assert found is not None and found[1] == b"<svg>english</svg>" and names.asked == 0


async def test_no_map_before_the_first_run(db: Any) -> None:
    assert await MapsInLanguages(InsightStore(db)).latest("png", HEBREW, Names()) is None


async def test_a_second_copy_of_a_kept_map_is_refused_by_the_unique_index(db: Any) -> None:
    store = InsightStore(db)
    run_id = await stored_run(store)
    assert await store.add_blob(run_id, "map.da.svg", b"first")
    assert not await store.add_blob(run_id, "map.da.svg", b"second")
    assert await store.run_result(run_id, "map.da.svg") == (None, b"first")


@pytest.mark.parametrize("language", ["da", "sv", "lv", "he"])
def test_the_map_words_are_translated(language: str) -> None:
    from coalition.web.i18n import Formatter
    from coalition.web.network_map import map_words

    words = map_words(Formatter(language, "EUR", 2))
    english = MapWords()
    assert words.language == language and words.rtl == (language == "he")
    assert words.title != english.title and words.legend_title != english.legend_title
    assert "{n}" in words.community and words.community != english.community
    assert map_words(Formatter("en", "EUR", 2)) == english  # the words the analysis run drew
