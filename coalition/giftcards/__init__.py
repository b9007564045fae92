"""Gift cards: stored value sold at any partner, spent at any partner, settled in money."""
