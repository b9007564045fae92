"""Settings, read from the environment (``COALITION_*``) in one place.

Nothing reads the environment at import time: call :func:`load_settings` (the
CLI and the application factory do) and pass the result down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

DEFAULT_DATABASE_FILE = "coalition.db"

# ISO 4217 minor-unit exponents for the currencies a network is likely to run in;
# anything else must be given explicitly with COALITION_CURRENCY_EXPONENT.
CURRENCY_EXPONENTS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "JPY": 0, "SEK": 2,
                      "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "KWD": 3, "BHD": 3}


class ConfigError(ValueError):
    """A COALITION_* variable has a value we cannot use."""


# Defaults other modules use too (a service called without settings, the network policy before
# an admin stores its own value): defined once, here.
DEFAULT_MEMBER_CLAIM_TTL_S = 7 * 24 * 3600
DEFAULT_REDEEM_WITHOUT_PROOF_POINTS = 200


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DATABASE_FILE}"
    redis_url: str | None = None
    # Master secret: encrypts contact data, keys the blind index, derives the network's
    # Ed25519 signing key. With none given, a file beside the SQLite database holds one.
    secret_key: str | None = None
    secret_file: Path = Path("coalition.secret")
    admin_key: str | None = None
    network_name: str = "Coalition"
    currency: str = "EUR"
    currency_exponent: int = 2
    point_value_minor: int = 1
    points_expiry_days: int = 365
    default_hold_expiry_s: int = 900
    max_hold_expiry_s: int = 7 * 24 * 3600
    rate_limit_per_s: int = 200
    auth_cache_s: float = 2.0
    # Failed credentials (bad key, token or Basic password) one client address may send a
    # minute; beyond, the address gets 429 before any lookup (guessing keys stays hopeless).
    auth_failures_per_min: int = 30
    # /metrics on the API's address needs an admin key or this token (Bearer); with
    # metrics_port set, the metrics are also served without credentials on that address.
    metrics_token: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    max_query_bytes: int = 100_000
    # What one GraphQL document may cost, by budget name (coalition/graphql/limits.py):
    # overrides of the defaults for callers with a credential, and for those without.
    query_budget: Mapping[str, int] = field(default_factory=dict)
    anonymous_query_budget: Mapping[str, int] = field(default_factory=dict)
    # An over-budget document is answered after this long: no work, but a client repeating it
    # in a loop gets at most a few refusals a second per connection.
    refusal_delay_s: float = 0.1
    document_cache_size: int = 1024
    # Idle connections kept per process: at least the requests one process serves at once,
    # or connections are opened and closed under load (twice as many are allowed in a burst).
    db_pool_size: int = 32
    # How long the API waits for PostgreSQL (0: no limit), so that a database that is down or
    # hung costs a request a 503 within 2 s rather than a hang (README, "Outages"). The
    # server cancels a statement after db_statement_timeout_s; the client gives up on a
    # server that does not answer after db_command_timeout_s, which must be longer.
    db_connect_timeout_s: float = 1.0
    db_command_timeout_s: float = 1.25
    db_statement_timeout_s: float = 1.0
    db_pool_timeout_s: float = 1.0
    # Redis (rate limits, cached insights): connect and read timeouts, and how idle a
    # connection may be before it is checked with a PING before use.
    redis_timeout_s: float = 0.5
    redis_health_check_s: int = 30
    # PostgreSQL: one-statement earns (and, apart, redemptions) one process runs at once; those
    # that arrive meanwhile go together in the next statement (ledger/batching.py). One gives
    # the largest batches and the least CPU per earn; more suits a database with many cores
    # and few API processes (docs/benchmarks-journal.md, finding 8).
    ledger_batches_in_flight: int = 1
    # The one scheduler (coalition/worker.py): the API process runs it only when told
    # (COALITION_RUN_WORKER=1); `coalition worker` runs it anyway. How often it voids expired holds.
    run_worker: bool = False
    hold_sweep_interval_s: float = 5.0
    # Referrals: both members get network-issued points at the referee's first purchase of at
    # least referral_min_purchase_minor; a referrer may bring in referral_daily_limit members a day.
    referral_bonus_points: int = 200
    referral_welcome_points: int = 100
    referral_min_purchase_minor: int = 1000
    referral_daily_limit: int = 10
    # Network analysis: how often the scheduler in the API process runs it (with
    # COALITION_RUN_WORKER=1; `coalition worker --analyze-every` for the worker), and how long
    # Redis keeps results.
    analyze_interval_s: float = 0.0
    insights_cache_s: int = 3600
    # Member access: the base URL of links the network hands out (claim links), and how long a
    # one-time claim code from enrollMember / issueMemberClaimCode stays valid.
    public_url: str = "http://127.0.0.1:8000"
    member_claim_ttl_s: int = DEFAULT_MEMBER_CLAIM_TTL_S
    # Trust (issue 13): points a merchant may redeem or hold from one member in 24 h without the
    # member's proof of presence, while the network policy stores no value of its own; and how
    # long a refused write's outcome stays under its idempotency key.
    redeem_without_proof_points: int = DEFAULT_REDEEM_WITHOUT_PROOF_POINTS
    # Campaigns report lift only when both the treated and the control group have this many members.
    campaign_min_group_size: int = 30
    # How often the worker recomputes the stored result of each campaign not yet final (0: never;
    # then every read computes). Readers recompute a result older than twice this
    # (coalition/programs/campaign_snapshots.py).
    campaign_results_interval_s: float = 300.0
    # How often the worker reviews every member's status tier (coalition/programs/tier_review.py).
    tier_review_interval_s: float = 300.0
    idempotency_retention_s: int = 24 * 3600
    # Gift cards (issue 16; coalition/giftcards/): the most one card may hold (minor units), the
    # days a card lives (0: never expires), the share of a spend at another partner the network
    # keeps as its fee (a Decimal, 0..1), and failed code look-ups a caller may make per window.
    gift_card_max_minor: int = 50_000
    gift_card_expiry_days: int = 0
    gift_card_fee_rate: str = "0"
    gift_card_lookup_failures: int = 20
    gift_card_lookup_window_s: int = 600
    gift_card_earns_points: bool = False  # a card sold to a member (loyaltyId) earns points like a purchase
    # Programs (issue 15): whether an expired voucher gives its points back (a reversal of its
    # redemption), and how often a process re-reads which merchants run stamp cards and quests.
    voucher_expiry_refund: bool = True
    programs_cache_s: float = 5.0
    # The worker's ``programs`` job (coalition/programs/catchup.py): how far back it looks for a
    # stamp, quest visit or refund's undoing a crash lost (0: the job is off), and how old an
    # entry must be before it looks (the live hook runs right after the commit).
    programs_catchup_s: float = 24 * 3600.0
    programs_catchup_grace_s: float = 60.0
    # Integrations (issue 17): member imports (coalition/portability) — the largest file, line and
    # row count the CLI takes, and the largest upload POST /import/members takes; lookups by
    # contact a merchant may make a minute; the wallet pass's signing certificate and key (PEM
    # files; unsigned passes without them) and its Apple identifiers.
    import_max_bytes: int = 1 << 30
    import_max_line_bytes: int = 64 * 1024
    import_max_rows: int = 2_000_000
    import_max_upload_bytes: int = 20 * 1024 * 1024
    lookup_per_min: int = 30
    pass_certificate_file: Path | None = None
    pass_key_file: Path | None = None
    pass_type_identifier: str = "pass.org.coalition.member"
    pass_team_identifier: str = "COALITION"
    # Webhooks (coalition/webhooks/): hosts exempt from the private-address check (tests, local
    # development); delivery timeout; retries with exponential backoff for the retry window.
    webhook_allowed_hosts: frozenset[str] = frozenset()
    webhook_timeout_s: float = 10.0
    webhook_retry_window_s: float = 72 * 3600
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_cap_s: float = 3600.0
    webhook_poll_s: float = 1.0
    webhook_cache_s: float = 1.0
    # Live subscriptions (graphql-transport-ws on /graphql): subscriptions per connection; seconds
    # between checks of an open connection's credential (a key revoked mid-stream closes it).
    ws_max_subscriptions: int = 10
    ws_recheck_s: float = 60.0
    # Pages (issue 18): a console session ends after this long unused, or this long after sign-in;
    # an account locks for login_lockout_s after login_max_failures wrong passwords in a row.
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 3600
    login_max_failures: int = 5
    login_lockout_s: int = 15 * 60
    default_language: str = "en"
    settlement_due_days: int = 14  # a statement is paid this many days after its period ends
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ConfigError(f"{name}={value} must not be negative")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be 1 or 0")


def _secret(env: Mapping[str, str], name: str, min_length: int = 16) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    if len(raw) < min_length:
        raise ConfigError(f"{name} is {len(raw)} characters: use a random one of at least {min_length}")
    return raw


def _public_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or any(ch in url for ch in " #?"):
        raise ConfigError(f"COALITION_PUBLIC_URL={url!r} must be an http(s) URL without query or fragment")
    return url.rstrip("/")


def _check_timeouts(settings: Settings) -> Settings:
    command, statement = settings.db_command_timeout_s, settings.db_statement_timeout_s
    if command and statement and statement >= command:
        # Else a slow statement would look like a hung server: the client would give up and
        # drop the connection before the server cancelled the statement.
        raise ConfigError(f"COALITION_DB_STATEMENT_TIMEOUT_S={statement} must be below "
                          f"COALITION_DB_COMMAND_TIMEOUT_S={command} (or set either to 0: no limit)")
    return settings


QUERY_BUDGET_NAMES = (
    "tokens", "depth", "fields", "repeats", "aliases", "operations", "fragments", "page_size", "slowdown"
)


def _budget(env: Mapping[str, str], name: str) -> dict[str, int]:
    """``fields=500,tokens=3000`` -> ``{"fields": 500, "tokens": 3000}``."""
    budget: dict[str, int] = {}
    for item in (env.get(name) or "").split(","):
        if not item.strip():
            continue
        key, _, raw = item.partition("=")
        key = key.strip()
        if key not in QUERY_BUDGET_NAMES:
            raise ConfigError(f"{name}: unknown budget {key!r}; use {', '.join(QUERY_BUDGET_NAMES)}")
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: {key}={raw.strip()!r} is not a whole number") from None
        if value < (0 if key == "slowdown" else 1):
            raise ConfigError(f"{name}: {key}={value} must be at least {0 if key == 'slowdown' else 1}")
        budget[key] = value
    return budget


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(f"COALITION_DATABASE_URL must be a PostgreSQL or SQLite URL, not {url.split(':')[0]!r}")


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    """A Decimal share 0..1, kept as its text (Settings holds no Decimal)."""
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise ConfigError(f"{name}={raw!r} is not a decimal number") from None
    if not value.is_finite() or not 0 <= value <= 1:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 1")
    return str(value)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    currency = env.get("COALITION_CURRENCY", "EUR").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ConfigError(f"COALITION_CURRENCY={currency!r} is not an ISO 4217 code")
    exponent_default = CURRENCY_EXPONENTS.get(currency)
    if exponent_default is None and not env.get("COALITION_CURRENCY_EXPONENT"):
        raise ConfigError(f"set COALITION_CURRENCY_EXPONENT for currency {currency}")
    database_url = normalize_database_url(
        env.get("COALITION_DATABASE_URL") or f"sqlite+aiosqlite:///{DEFAULT_DATABASE_FILE}"
    )
    return _check_timeouts(Settings(
        database_url=database_url,
        redis_url=env.get("COALITION_REDIS_URL") or None,
        secret_key=env.get("COALITION_SECRET_KEY") or None,
        secret_file=Path(env.get("COALITION_SECRET_FILE", "coalition.secret")),
        admin_key=env.get("COALITION_ADMIN_KEY") or None,
        network_name=env.get("COALITION_NETWORK_NAME", "Coalition"),
        currency=currency,
        currency_exponent=_int(env, "COALITION_CURRENCY_EXPONENT", exponent_default or 2),
        point_value_minor=_int(env, "COALITION_POINT_VALUE_MINOR", 1, minimum=1),
        points_expiry_days=_int(env, "COALITION_POINTS_EXPIRY_DAYS", 365, minimum=1),
        default_hold_expiry_s=_int(env, "COALITION_HOLD_EXPIRY_S", 900, minimum=1),
        rate_limit_per_s=_int(env, "COALITION_RATE_LIMIT_PER_S", 200, minimum=1),
        auth_cache_s=_float(env, "COALITION_AUTH_CACHE_S", 2.0),
        auth_failures_per_min=_int(env, "COALITION_AUTH_FAILURES_PER_MIN", 30, minimum=1),
        metrics_token=_secret(env, "COALITION_METRICS_TOKEN"),
        metrics_port=_int(env, "COALITION_METRICS_PORT", 0, minimum=0) or None,
        metrics_host=env.get("COALITION_METRICS_HOST") or "127.0.0.1",
        db_pool_size=_int(env, "COALITION_DB_POOL_SIZE", 32, minimum=1),
        db_connect_timeout_s=_float(env, "COALITION_DB_CONNECT_TIMEOUT_S", 1.0),
        db_command_timeout_s=_float(env, "COALITION_DB_COMMAND_TIMEOUT_S", 1.25),
        db_statement_timeout_s=_float(env, "COALITION_DB_STATEMENT_TIMEOUT_S", 1.0),
        db_pool_timeout_s=_float(env, "COALITION_DB_POOL_TIMEOUT_S", 1.0),
        redis_timeout_s=_float(env, "COALITION_REDIS_TIMEOUT_S", 0.5),
        redis_health_check_s=_int(env, "COALITION_REDIS_HEALTH_CHECK_S", 30),
        ledger_batches_in_flight=_int(env, "COALITION_LEDGER_BATCHES_IN_FLIGHT", 1, minimum=1),
        run_worker=_flag(env, "COALITION_RUN_WORKER"),
        hold_sweep_interval_s=_float(env, "COALITION_HOLD_SWEEP_INTERVAL_S", 5.0),
        referral_bonus_points=_int(env, "COALITION_REFERRAL_BONUS_POINTS", 200),
        referral_welcome_points=_int(env, "COALITION_REFERRAL_WELCOME_POINTS", 100),
        referral_min_purchase_minor=_int(env, "COALITION_REFERRAL_MIN_PURCHASE_MINOR", 1000, minimum=1),
        referral_daily_limit=_int(env, "COALITION_REFERRAL_DAILY_LIMIT", 10, minimum=1),
        analyze_interval_s=_float(env, "COALITION_ANALYZE_INTERVAL_S", 0.0),
        insights_cache_s=_int(env, "COALITION_INSIGHTS_CACHE_S", 3600, minimum=1),
        public_url=_public_url(env.get("COALITION_PUBLIC_URL") or "http://127.0.0.1:8000"),
        member_claim_ttl_s=_int(env, "COALITION_MEMBER_CLAIM_TTL_S", DEFAULT_MEMBER_CLAIM_TTL_S, minimum=60),
        query_budget=_budget(env, "COALITION_QUERY_BUDGET"),
        anonymous_query_budget=_budget(env, "COALITION_ANONYMOUS_QUERY_BUDGET"),
        refusal_delay_s=_int(env, "COALITION_REFUSAL_DELAY_MS", 100) / 1000,
        redeem_without_proof_points=_int(
            env, "COALITION_REDEEM_WITHOUT_PROOF_POINTS", DEFAULT_REDEEM_WITHOUT_PROOF_POINTS),
        campaign_min_group_size=_int(env, "COALITION_CAMPAIGN_MIN_GROUP_SIZE", 30, minimum=2),
        campaign_results_interval_s=_float(env, "COALITION_CAMPAIGN_RESULTS_INTERVAL_S", 300.0),
        tier_review_interval_s=_float(env, "COALITION_TIER_REVIEW_INTERVAL_S", 300.0),
        # At least an hour: wrong proofs of presence are counted from the kept refusals of the last hour.
        idempotency_retention_s=_int(env, "COALITION_IDEMPOTENCY_RETENTION_S", 24 * 3600, minimum=3600),
        gift_card_max_minor=_int(env, "COALITION_GIFT_CARD_MAX_MINOR", 50_000, minimum=1),
        gift_card_expiry_days=_int(env, "COALITION_GIFT_CARD_EXPIRY_DAYS", 0, minimum=0),
        gift_card_fee_rate=_rate(env, "COALITION_GIFT_CARD_FEE_RATE", "0"),
        gift_card_lookup_failures=_int(env, "COALITION_GIFT_CARD_LOOKUP_FAILURES", 20, minimum=1),
        gift_card_lookup_window_s=_int(env, "COALITION_GIFT_CARD_LOOKUP_WINDOW_S", 600, minimum=1),
        gift_card_earns_points=_flag(env, "COALITION_GIFT_CARD_EARNS_POINTS"),
        voucher_expiry_refund=_flag({**env, "COALITION_VOUCHER_EXPIRY_REFUND": env.get(
            "COALITION_VOUCHER_EXPIRY_REFUND") or "1"}, "COALITION_VOUCHER_EXPIRY_REFUND"),
        programs_cache_s=_float(env, "COALITION_PROGRAMS_CACHE_S", 5.0),
        programs_catchup_s=_float(env, "COALITION_PROGRAMS_CATCHUP_S", 24 * 3600.0),
        programs_catchup_grace_s=_float(env, "COALITION_PROGRAMS_CATCHUP_GRACE_S", 60.0),
        import_max_bytes=_int(env, "COALITION_IMPORT_MAX_BYTES", 1 << 30, minimum=1024),
        import_max_line_bytes=_int(env, "COALITION_IMPORT_MAX_LINE_BYTES", 64 * 1024, minimum=256),
        import_max_rows=_int(env, "COALITION_IMPORT_MAX_ROWS", 2_000_000, minimum=1),
        import_max_upload_bytes=_int(env, "COALITION_IMPORT_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024),
        lookup_per_min=_int(env, "COALITION_LOOKUP_PER_MIN", 30, minimum=1),
        pass_certificate_file=Path(env["COALITION_PASS_CERTIFICATE_FILE"])
        if env.get("COALITION_PASS_CERTIFICATE_FILE") else None,
        pass_key_file=Path(env["COALITION_PASS_KEY_FILE"]) if env.get("COALITION_PASS_KEY_FILE") else None,
        pass_type_identifier=env.get("COALITION_PASS_TYPE_IDENTIFIER") or "pass.org.coalition.member",
        pass_team_identifier=env.get("COALITION_PASS_TEAM_IDENTIFIER") or "COALITION",
        webhook_allowed_hosts=frozenset(h.strip().lower().strip("[]")
                                        for h in env.get("COALITION_WEBHOOK_ALLOWED_HOSTS", "").split(",")
                                        if h.strip()),
        webhook_timeout_s=_float(env, "COALITION_WEBHOOK_TIMEOUT_S", 10.0) or 10.0,
        webhook_retry_window_s=_float(env, "COALITION_WEBHOOK_RETRY_WINDOW_S", 72 * 3600),
        webhook_backoff_base_s=_float(env, "COALITION_WEBHOOK_BACKOFF_BASE_S", 5.0),
        webhook_backoff_cap_s=_float(env, "COALITION_WEBHOOK_BACKOFF_CAP_S", 3600.0),
        webhook_poll_s=_float(env, "COALITION_WEBHOOK_POLL_S", 1.0),
        webhook_cache_s=_float(env, "COALITION_WEBHOOK_CACHE_S", 1.0),
        ws_max_subscriptions=_int(env, "COALITION_WS_MAX_SUBSCRIPTIONS", 10, minimum=1),
        ws_recheck_s=_float(env, "COALITION_WS_RECHECK_S", 60.0) or 60.0,
        session_idle_s=_int(env, "COALITION_SESSION_IDLE_S", 30 * 60, minimum=60),
        session_absolute_s=_int(env, "COALITION_SESSION_ABSOLUTE_S", 12 * 3600, minimum=60),
        login_max_failures=_int(env, "COALITION_LOGIN_MAX_FAILURES", 5, minimum=1),
        login_lockout_s=_int(env, "COALITION_LOGIN_LOCKOUT_S", 15 * 60, minimum=1),
        default_language=env.get("COALITION_DEFAULT_LANGUAGE") or "en",
        settlement_due_days=_int(env, "COALITION_SETTLEMENT_DUE_DAYS", 14),
    ))
