"""Data portability: members, balances and dated history in (``service``), members and transactions out (``export``)."""
