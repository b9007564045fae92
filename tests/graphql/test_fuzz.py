"""A schema-driven fuzz of the whole API: no request, however malformed, gets a 5xx or leaves a traceback.

The generator reads the schema by introspection, so a field added tomorrow is fuzzed tomorrow:

- every request picks a role (admin, one of three merchants, a member token, anonymous), a root
  field of ``Query`` or ``Mutation`` and builds a document for it: each argument a variable of
  the declared type (sometimes an inline literal instead, so scalars' ``parse_literal`` runs
  too), a selection set walked from the field's type a few levels deep, nested fields with
  their own arguments, ``... on`` fragments for interfaces and unions;
- argument values come from pools: values harvested from earlier responses (every ``id``,
  cursor, loyalty ID, referral code the API handed out, so many requests reach the database
  with real rows), and hostile ones (NUL and other control characters, lone surrogates sent as
  JSON escapes, RTL overrides, 4-byte characters, long and blank strings, SQL and format
  metacharacters, numbers at and beyond every bound, naive and malformed dates, forged IDs
  and cursors, values of the wrong JSON type);
- now and then the request itself is broken: a lone surrogate in the query or
  ``operationName``, variables of the wrong shape; and the page routes get hostile path
  segments and query parameters.

Then: no status ≥ 500, no ``INTERNAL_SERVER_ERROR``, no ERROR record or traceback in the log,
and the ledger invariants hold. ``COALITION_FUZZ_REQUESTS`` sets the number of requests
(default 2,000, about 30 s on SQLite), ``COALITION_FUZZ_SEED`` the seed; a failure prints the
seed and the first offending requests so that a run can be repeated exactly.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from graphql import get_introspection_query
from planted_network import forget_cached_insights

from coalition.db import Database
from coalition.ledger.invariants import assert_ledger_consistent

FUZZ_REQUESTS = int(os.environ.get("COALITION_FUZZ_REQUESTS", "2000"))
FUZZ_SEED = int(os.environ.get("COALITION_FUZZ_SEED", str(random.randrange(1 << 30))))
MAX_DEPTH = 3  # selection depth below the root field: deep enough to reach nested connections

HOSTILE_STRINGS = [
    "", " ", "\t\n ", "\x00", "a\x00b", "\x01\x7f", "\x1b[31m", "\u202egnp.exe", "\u200b", "\ufeff",
    "\ud800", "a\udfffb", "\udbff\udc00", "😀" * 3, "\U0001d518\U0001d52b",
    "²", "٣", "¹²³", "Ⅻ", "ﬁ", "İ", "ß",
    "x" * 300, "y" * 5000, "' OR 1=1 --", "\"; DROP TABLE members; --", "%s%s%n", "{0}{1}", "${jndi:x}",
    "\\", "%00", "../../etc/passwd", "<script>alert(1)</script>", "null", "0", "-1", "1e309", "NaN",
    "LX-0000-0000-0", "lx0000000000", "ann@example.com", "ann\ud800@example.com", "ann\x00@example.com",
    "+44 7700 900123", "+\x0044", "Q29kZTox", "cursor:1", "ISSUANCE", "REDEMPTION", "0.80", "1.5", "-0.1",
    "reference,time,amount_minor,points\nr1,2026-01-05T12:00:00+00:00,100,1\n",
    "reference,time,points\nr\x00,2026-01-05T12:00:00,1e9\n",
]
BOUND_INTS = [0, 1, -1, 2, 7, 100, 101, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53, 2**63 - 1, 2**63,
              2**64, -(2**63) - 1, 10**30]
DATETIMES = [
    "2026-01-05T12:00:00+00:00", "2026-01-05T12:00:00Z", "2030-01-01T00:00:00+14:00", "2026-01-05T12:00:00",
    "2026-01-05", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-12:00",
    "2026-02-30T00:00:00+00:00", "2026-01-05T12:00:00+99:00", "not a date", "", "\x00", "2026-01-05T12:00:00\ud800",
    "1970-01-01T00:00:00+00:00", "2026-01-05 12:00:00+00:00", "+275760-09-13T00:00:00Z",
]
DATES = ["2026-01-05", "0001-01-01", "9999-12-31", "2026-02-30", "20260105", "", "x"]
WRONG_TYPES: list[Any] = [None, True, 0, -1, 2**70, 1.5, "x", [], {}, ["a"], {"a": 1}]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Pools:
    """Values the generator draws from; the harvested ones grow as responses come back."""

    ids: list[str] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)  # loyalty IDs, referral codes and the like

    by_name: dict[str, list[str]] = field(default_factory=dict)  # every string the API returned, by field name

    def harvest(self, value: Any, key: str | None = None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self.harvest(v, k)
        elif isinstance(value, list):
            for item in value:
                self.harvest(item, key)
        elif isinstance(value, str) and len(value) < 200 and key is not None:
            _add(self.by_name.setdefault(key, []), value, limit=50)
            if key == "id" or (key.endswith("Id") and key != "loyaltyId"):
                _add(self.ids, value)
            elif key in ("cursor", "endCursor"):
                _add(self.cursors, value)
            elif key in ("loyaltyId", "referralCode", "reference", "code"):
                _add(self.strings, value)


def _add(pool: list[str], value: str, limit: int = 200) -> None:
    if value not in pool:
        pool.append(value)
        if len(pool) > limit:
            pool.pop(0)


class Generator:
    """Builds one request at a time from the introspected schema."""

    def __init__(self, introspection: dict[str, Any], pools: Pools, rng: random.Random) -> None:
        self.types: dict[str, dict[str, Any]] = {t["name"]: t for t in introspection["types"]}
        self.root_names = [name for name in (introspection["queryType"], introspection.get("mutationType"))
                           if name]
        self.pools = pools
        self.rng = rng
        self.variables: dict[str, Any] = {}
        self.declarations: list[str] = []
        self.hostility = 0.5

    # -- documents ---------------------------------------------------------------------------------

    def root_fields(self) -> list[tuple[str, dict[str, Any]]]:
        return [(root, f) for root in self.root_names for f in self.types[root]["fields"]]

    def request(self, root: str, root_field: dict[str, Any], hostility: float | None = None) -> dict[str, Any]:
        self.variables, self.declarations = {}, []
        # Some requests are nearly valid (one bad value reaches deep code), some hostile throughout.
        self.hostility = self.rng.choice([0.0, 0.1, 0.1, 0.5, 0.9]) if hostility is None else hostility
        operation = "mutation" if root == introspected_mutation(self.root_names) else "query"
        body = self.field(root_field, depth=0)
        name = "Fuzz"
        declared = f"({', '.join(self.declarations)})" if self.declarations else ""
        document = f"{operation} {name}{declared} {{ {body} }}"
        request: dict[str, Any] = {"query": document, "variables": self.variables, "operationName": name}
        roll = self.rng.random() if self.hostility else 1.0
        if roll < 0.02:
            request["query"] = document + " # \ud800"
        elif roll < 0.04:
            request["operationName"] = "Fuzz\udc00"
        elif roll < 0.06 and self.variables:
            victim = self.rng.choice(list(self.variables))
            request["variables"][victim] = self.rng.choice(WRONG_TYPES)
        elif roll < 0.07:
            request["variables"] = self.rng.choice([[], "x", 1, {"\ud800": 1}])
        return request

    def field(self, f: dict[str, Any], depth: int) -> str:
        args = [self.argument(a) for a in f["args"] if self.wants_argument(a)]
        head = f["name"] + (f"({', '.join(args)})" if args else "")
        selection = self.selection(_named(f["type"]), depth + 1)
        return f"{head} {selection}" if selection else head

    def wants_argument(self, arg: dict[str, Any]) -> bool:
        return arg["type"]["kind"] == "NON_NULL" or self.rng.random() < 0.6

    def argument(self, arg: dict[str, Any]) -> str:
        value = self.value(arg["type"], arg["name"])
        if self.rng.random() < 0.1 and _is_literal_safe(value):
            return f"{arg['name']}: {_literal(value)}"
        variable = f"v{len(self.declarations)}"
        self.declarations.append(f"${variable}: {_type_ref(arg['type'])}")
        self.variables[variable] = value
        return f"{arg['name']}: ${variable}"

    def selection(self, type_name: str, depth: int) -> str:
        t = self.types[type_name]
        kind = t["kind"]
        if kind in ("SCALAR", "ENUM"):
            return ""
        if kind in ("INTERFACE", "UNION"):
            parts = ["__typename"]
            parts += [f.get("name") for f in t.get("fields") or []
                      if _named_kind(self.types, f["type"]) in ("SCALAR", "ENUM") and not _required_args(f)]
            for possible in self.rng.sample(t["possibleTypes"], min(2, len(t["possibleTypes"]))):
                inner = self.selection(possible["name"], depth)
                parts.append(f"... on {possible['name']} {inner}")
            return "{ " + " ".join(parts) + " }"
        parts = []
        for f in t["fields"]:
            inner_kind = _named_kind(self.types, f["type"])
            if inner_kind in ("SCALAR", "ENUM"):
                if not _required_args(f) or self.rng.random() < 0.5:
                    parts.append(self.field(f, depth))
            elif depth < MAX_DEPTH and self.rng.random() < 0.5:
                parts.append(self.field(f, depth))
        return "{ " + " ".join(parts or ["__typename"]) + " }"

    # -- values ------------------------------------------------------------------------------------

    def value(self, type_ref: dict[str, Any], name: str) -> Any:
        rng = self.rng
        if type_ref["kind"] == "NON_NULL":
            if rng.random() < 0.04 * self.hostility:
                return None
            return self.value(type_ref["ofType"], name)
        if rng.random() < 0.06 * self.hostility:
            return rng.choice(WRONG_TYPES)
        if type_ref["kind"] == "LIST":
            return [self.value(type_ref["ofType"], name) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        t = self.types[type_ref["name"]]
        if t["kind"] == "ENUM":
            values = [v["name"] for v in t["enumValues"]]
            return rng.choice(values) if rng.random() >= self.hostility else rng.choice(["NOT_A_VALUE", "\u202e", 1])
        if t["kind"] == "INPUT_OBJECT":
            value = {}
            for f in t["inputFields"]:
                if f["type"]["kind"] == "NON_NULL" or rng.random() < 0.6:
                    value[f["name"]] = self.value(f["type"], f["name"])
            if rng.random() < 0.04 * self.hostility:
                value["notAField"] = 1
            return value
        return self.scalar(t["name"], name)

    def scalar(self, type_name: str, name: str) -> Any:
        if self.rng.random() < self.hostility:
            return self.hostile(type_name, name)
        return self.plausible(type_name, name)

    def plausible(self, type_name: str, name: str) -> Any:
        """A value a well-behaved client might send: harvested, fresh or small, so requests get deep."""
        rng, pools = self.rng, self.pools
        lowered = name.lower()
        harvested = pools.by_name.get(name)
        if type_name == "ID" or (type_name == "String" and lowered.endswith("id") and lowered != "loyaltyid"):
            return rng.choice(pools.ids) if pools.ids else self.hostile(type_name, name)
        if type_name == "String":
            if lowered in ("after", "before", "cursor"):
                return rng.choice(pools.cursors) if pools.cursors else None
            if "idempotency" in lowered:
                return f"fuzz-{rng.randrange(1 << 40)}"
            if harvested and rng.random() < 0.8:
                return rng.choice(harvested)
            if "email" in lowered:
                return f"fuzz{rng.randrange(1 << 30)}@example.com"
            if "phone" in lowered:
                return f"+44{rng.randrange(10**9, 10**10)}"
            return f"fuzz {rng.randrange(1000)}"
        if type_name in ("Int", "BigInt"):
            return rng.randrange(1, 20) if lowered in ("first", "last") else rng.randrange(1, 300)
        if type_name == "Float":
            return rng.random()
        if type_name == "Boolean":
            return rng.choice([True, False])
        if type_name == "DateTime":
            when = dt.datetime.now(dt.UTC) - dt.timedelta(days=rng.randrange(-2, 40), minutes=rng.randrange(1440))
            return when.isoformat()
        if type_name == "Date":
            return (dt.date.today() - dt.timedelta(days=rng.randrange(-2, 40))).isoformat()
        return harvested[0] if harvested else self.hostile(type_name, name)

    def hostile(self, type_name: str, name: str) -> Any:
        """A value chosen to break things: forged, malformed, at or beyond a bound."""
        rng, pools = self.rng, self.pools
        lowered = name.lower()
        if type_name == "ID" or (type_name == "String" and lowered.endswith("id") and lowered != "loyaltyid"):
            forged = [_b64("Member:1"), _b64("Member:99999999999999999999"), _b64("Merchant:-1"), _b64("Hold:0"),
                      _b64("Transaction:1e3"), _b64("Nope:1"), _b64("Member:²"), "Member:1", "", "\x00", "!!!",
                      _b64("\ud7ff"), "1"]
            return rng.choice(pools.ids or forged) if rng.random() < 0.3 else rng.choice(forged + HOSTILE_STRINGS)
        if type_name == "String" and lowered in ("after", "before", "cursor"):
            forged = [_b64("cursor:0"), _b64("cursor:-5"), _b64("cursor:99999999999999999999"), _b64("cursor:²"),
                      _b64("cursor:1:2"), "cursor:1", "%%%", _b64("\xff")]
            return rng.choice(forged + HOSTILE_STRINGS)
        if type_name == "String":
            if rng.random() < 0.2 and pools.strings:
                return rng.choice(pools.strings)
            return rng.choice(HOSTILE_STRINGS)
        if type_name in ("Int", "BigInt"):
            return rng.choice(BOUND_INTS)
        if type_name == "Float":
            return rng.choice([0.0, -1.0, 0.5, 1e308, -1e308, 2.0**63, 1e-320])
        if type_name == "Boolean":
            return rng.choice(WRONG_TYPES)
        if type_name == "DateTime":
            return rng.choice(DATETIMES)
        if type_name == "Date":
            return rng.choice(DATES)
        # An unknown custom scalar: strings and numbers of every kind.
        return rng.choice([*HOSTILE_STRINGS, *BOUND_INTS, *DATETIMES])


def introspected_mutation(root_names: list[str]) -> str | None:
    return root_names[1] if len(root_names) > 1 else None


def _named(type_ref: dict[str, Any]) -> str:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return str(type_ref["name"])


def _named_kind(types: dict[str, dict[str, Any]], type_ref: dict[str, Any]) -> str:
    return str(types[_named(type_ref)]["kind"])


def _required_args(f: dict[str, Any]) -> bool:
    return any(a["type"]["kind"] == "NON_NULL" for a in f["args"])


def _type_ref(type_ref: dict[str, Any]) -> str:
    if type_ref["kind"] == "NON_NULL":
        return _type_ref(type_ref["ofType"]) + "!"
    if type_ref["kind"] == "LIST":
        return f"[{_type_ref(type_ref['ofType'])}]"
    return str(type_ref["name"])


def _is_literal_safe(value: Any) -> bool:
    """Whether ``value`` can be written as a GraphQL literal (enum names and objects are left to variables)."""
    return isinstance(value, int | str) and not isinstance(value, bool) and (
        not isinstance(value, str) or all(ord(c) >= 32 and not 0xD800 <= ord(c) <= 0xDFFF for c in value))


def _literal(value: Any) -> str:
    return json.dumps(value)  # a JSON string or integer is also a GraphQL literal


ROUTE_VALUES = ["1", "²", "¹", "٣", "0", "-1", "99999999999999999999", "\u202e1", "%00", "%2e%2e", "1.5",
                "x" * 500, _b64("SettlementBatch:1"), _b64("SettlementBatch:99999999999999999999"),
                _b64("Merchant:1"), "%F0%9F%98%80"]


def _route_request(app: Any, rng: random.Random) -> tuple[str, str] | None:
    """A GET of one of the app's parametrised page routes, with hostile path and query values."""
    from starlette.routing import Route

    routes = [r for r in app.routes if isinstance(r, Route) and "{" in r.path and "GET" in (r.methods or {"GET"})]
    if not routes:
        return None
    route = rng.choice(routes)
    path = route.path
    for name in route.param_convertors:
        choice = rng.choice([*ROUTE_VALUES, "json", "csv", "html", "svg"])
        path = path.replace("{" + name + "}", choice)
    params = "&".join(f"{k}={rng.choice(ROUTE_VALUES)}" for k in
                      rng.sample(["merchant", "before", "batch", "periodEnd", "pointValueMinor", "breakageShare"],
                                 rng.randrange(0, 3)))
    return route.path, path + (f"?{params}" if params else "")


@dataclass
class Outcome:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    fields: Counter[str] = field(default_factory=Counter)
    root_fields: set[str] = field(default_factory=set)  # every root field of the introspected schema
    internal_errors: int = 0  # responses with an INTERNAL_SERVER_ERROR code (any status)
    error_records: int = 0  # ERROR log records, or any record with a traceback
    clean: int = 0  # answered without any error or userErrors: the request got all the way through
    seconds: Counter[str] = field(default_factory=Counter)  # time spent per root field or route

    def raised(self, label: str, exc: Exception) -> None:
        self.requests += 1
        self.statuses[500] += 1
        self.failures.append(f"{label}: the app raised {type(exc).__name__}: {str(exc)[:200]}")


@pytest.fixture(autouse=True)
async def _no_cached_insights(settings: Any) -> None:
    # Insights another test left in Redis name merchants and members this database does not have.
    await forget_cached_insights(settings.redis_url)


@pytest.fixture
async def seeded(db: Database, api: Any, admin_key: str, make_merchant: Any, make_member: Any, ledger: Any,
                 settings: Any) -> dict[str, Any]:
    """Three merchants, members with points, a hold and a settlement batch: real rows to aim at."""
    from coalition.partners.service import onboard_merchant

    merchants = [await onboard_merchant(db, name=f"Fuzz shop {i}", category="test", earn_rate_points_per_unit=1)
                 for i in range(3)]
    members, contacts = [], []
    for i in range(4):
        contacts += [f"member{i}@example.com", f"+4477009001{i:02d}"]
        enrolled = await make_member(merchants[i % 3].merchant.id, email=contacts[-2], phone=contacts[-1])
        members.append(enrolled)
        await ledger.earn(merchant_id=merchants[i % 3].merchant.id, loyalty_id=enrolled.member.loyalty_id,
                          purchase_amount_minor=50_000, idempotency_key=f"seed-earn-{i}")
    await ledger.redeem(merchant_id=merchants[1].merchant.id, loyalty_id=members[0].member.loyalty_id, points=10,
                        idempotency_key="seed-redeem")
    await ledger.authorize(merchant_id=merchants[2].merchant.id, loyalty_id=members[1].member.loyalty_id, points=5,
                           idempotency_key="seed-hold")
    return {"admin": admin_key, "merchants": [m.api_key for m in merchants],
            "member": members[0].member_token, "members": members, "contacts": contacts}


def _dumps(body: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as JSON escapes ("\ud800"), as a hostile client sends them.
    return json.dumps(body, ensure_ascii=True).encode()


async def _fuzz(api: Any, app: Any, seeded: dict[str, Any], caplog: Any, count: int, seed: int) -> Outcome:
    client = api.client
    rng = random.Random(seed)
    pools = Pools()
    roles: list[tuple[str, str | None]] = [("admin", seeded["admin"]), ("anonymous", None),
                                           ("member", seeded["member"])]
    roles += [(f"merchant{i}", key) for i, key in enumerate(seeded["merchants"])]
    introspection = await client.post("/graphql", content=_dumps({"query": get_introspection_query()}),
                                      headers={"Authorization": f"Bearer {seeded['admin']}",
                                               "Content-Type": "application/json"})
    assert introspection.status_code == 200, introspection.text
    schema = introspection.json()["data"]["__schema"]
    schema["queryType"] = schema["queryType"]["name"]
    schema["mutationType"] = (schema.get("mutationType") or {}).get("name")
    generator = Generator(schema, pools, rng)
    root_fields = generator.root_fields()
    assert root_fields
    outcome_fields = {f["name"] for _, f in root_fields}
    # Harvest real IDs, cursors and loyalty IDs first: every query field, well-formed, as every role.
    outcome = Outcome(root_fields=outcome_fields)
    for role, key in roles:
        for root, f in root_fields:
            if root == generator.root_names[0]:
                await _send(client, generator.request(root, f, hostility=0.0), key, pools, outcome,
                            f"{role} {f['name']}")
    for enrolled in seeded["members"]:
        _add(pools.strings, enrolled.member.loyalty_id)
    for _ in range(count):
        role, key = rng.choice(roles)
        if rng.random() < 0.05:
            route = _route_request(app, rng)
            if route is not None:
                template, path = route
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                started = time.perf_counter()
                try:
                    response = await client.get(path, headers=headers)
                except Exception as exc:  # the app raised: a 500 for a real client
                    outcome.raised(f"{role} GET {path!r}", exc)
                    continue
                outcome.seconds["GET " + template] += time.perf_counter() - started
                outcome.requests += 1
                outcome.statuses[response.status_code] += 1
                outcome.fields["GET " + template] += 1
                if response.status_code >= 500:
                    outcome.failures.append(f"{role} GET {path!r}: {response.status_code} {response.text[:200]}")
                continue
        root, f = rng.choice(root_fields)
        request = generator.request(root, f)
        outcome.fields[f["name"]] += 1
        started = time.perf_counter()
        await _send(client, request, key, pools, outcome, f"{role} {f['name']}", get=rng.random() < 0.05)
        outcome.seconds[f["name"]] += time.perf_counter() - started
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    outcome.error_records = len(logged)
    for record in logged[:10]:
        outcome.failures.append(f"log {record.levelname} {record.name}: {record.getMessage()[:300]}")
    # Nothing private in any log line, at any level: contact data, API keys, member tokens.
    private = [seeded["admin"], seeded["member"], *seeded["merchants"], *seeded["contacts"]]
    for record in caplog.records:
        text = record.getMessage()
        leaked = [p for p in private if p in text]
        if leaked:
            outcome.failures.append(f"log {record.name} carries private data: {text[:200]}")
    return outcome


async def _send(client: Any, request: dict[str, Any], key: str | None, pools: Pools, outcome: Outcome,
                label: str, *, get: bool = False) -> None:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    texts = (request["query"], request.get("operationName") or "")
    try:
        if get and all(_is_literal_safe(text) for text in texts):
            # The same request as GET query parameters (a mutation must get a 405); variables as escaped JSON.
            params = {"query": request["query"], "operationName": request.get("operationName") or "",
                      "variables": json.dumps(request.get("variables"), ensure_ascii=True)}
            response = await client.get("/graphql", params=params, headers=headers)
        else:
            response = await client.post("/graphql", content=_dumps(request), headers=headers)
    except Exception as exc:  # the app raised: a 500 for a real client
        outcome.raised(f"{label}: {_dumps(request)[:300].decode()}", exc)
        return
    outcome.requests += 1
    outcome.statuses[response.status_code] += 1
    try:
        body = response.json()
    except ValueError:
        outcome.failures.append(f"{label}: {response.status_code}, not JSON: {response.text[:200]}")
        return
    internal = [e for e in body.get("errors") or []
                if (e.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"]
    outcome.internal_errors += bool(internal)
    if response.status_code >= 500 or internal:
        outcome.failures.append(f"{label}: {response.status_code} {json.dumps(body)[:200]}\n    request: "
                                f"{_dumps(request)[:600].decode()}")
    if isinstance(body.get("data"), dict):
        pools.harvest(body["data"])
        payloads = [v for v in body["data"].values() if isinstance(v, dict)]
        if not body.get("errors") and not any(p.get("userErrors") for p in payloads):
            outcome.clean += 1


async def test_no_request_gets_a_5xx_or_a_traceback(api: Any, app: Any, db: Database, seeded: dict[str, Any],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # given a network with real rows, and the log captured
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.perf_counter()

    # when thousands of generated requests hit every root field as every role
    outcome = await _fuzz(api, app, seeded, caplog, FUZZ_REQUESTS, FUZZ_SEED)
    elapsed = time.perf_counter() - started

    # then none gets a 5xx or an internal error, the log has no error, and the ledger is consistent
    server_errors = sum(n for status, n in outcome.statuses.items() if status >= 500)
    summary = (f"fuzz: {outcome.requests} requests in {elapsed:.1f} s, seed {FUZZ_SEED}: {server_errors} HTTP 5xx, "
               f"{outcome.internal_errors} INTERNAL_SERVER_ERROR, {outcome.error_records} ERROR/traceback log "
               f"records; {outcome.clean} answered without errors; statuses {dict(sorted(outcome.statuses.items()))}, "
               f"{len(outcome.fields)} fields/routes")
    slowest = ", ".join(f"{name} {seconds:.1f} s/{outcome.fields[name]}" for name, seconds in
                        outcome.seconds.most_common(4))
    print(summary + f"; slowest: {slowest}")
    assert not outcome.failures, summary + "\n" + "\n".join(outcome.failures[:15])
    if 20 * len(outcome.root_fields) <= FUZZ_REQUESTS:  # then every root field was sent, whatever the seed
        assert outcome.root_fields <= set(outcome.fields), outcome.root_fields - set(outcome.fields)
    async with db.read() as conn:
        await assert_ledger_consistent(conn)
