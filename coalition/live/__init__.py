"""Live events: ledger transactions fanned out to subscribers, across processes through Redis."""
