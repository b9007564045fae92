"""Bringing customers, opening balances and dated history over from another loyalty program."""
