"""A Python client of the Coalition API (httpx; sync :class:`Client` and :class:`AsyncClient`).

    from coalition.client import Client, UserError

    with Client("http://127.0.0.1:8000", api_key=BAKERY_KEY) as bakery:
        result = bakery.earn("XXXX-XXXX-XXXX", 4500, reference="R-1001")

Imports nothing of the server: only httpx and the standard library (an import-linter
contract in pyproject.toml says so), so a POS can install the package and use this alone.
The exception tree is drawn in ``coalition/client/_exceptions.py``.
"""

from coalition.client._client import AsyncClient, Client
from coalition.client._exceptions import (
    AuthenticationError,
    CoalitionError,
    GraphQLError,
    HTTPStatusError,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    UserError,
)
from coalition.client._models import Enrollment, Hold, LedgerResult, Member, Transaction

__all__ = [
    "AsyncClient", "AuthenticationError", "Client", "CoalitionError", "Enrollment", "GraphQLError", "HTTPStatusError",
    "Hold", "LedgerResult", "Member", "RateLimited", "ServiceUnavailable", "Transaction", "TransportError",
    "UserError",
]
