"""The words drawn on the static network map and its formats: plain data, so that a page can say
them in the reader's language without importing matplotlib (``netmap`` draws, ``map_languages`` keeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Format = Literal["png", "svg"]


@dataclass(frozen=True)
class MapWords:
    """The words drawn on the map, in the reader's language (the caller translates them).

    ``language`` (a BCP 47 code such as "he") tells the text shaper which script and direction
    the words are in: matplotlib >= 3.11 lays Hebrew out right to left (libraqm); ``rtl`` also
    mirrors the legend to the left, its colour dots after the words.
    """

    title: str = "Network map"
    legend_title: str = "Size: customers; lines: shared customers"
    community: str = "Community {n}"  # {n}: the community's number, from 1
    language: str = "en"
    rtl: bool = False
