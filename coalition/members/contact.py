"""Contact fingerprints: a coarse blind index that one person's enrollment variants share.

The exact blind index (``Member.email_index``, ``phone_index``) is unique, so the same
contact cannot enroll twice; a person who wants several accounts types a variant instead.
The fingerprint is the blind index of a *canonical* form that folds the usual variants
together, stored in non-unique columns for the fraud analysis
(``coalition.network.fraud.shared_contacts``). It is a keyed HMAC with its own label, so,
like the exact index, it reveals nothing without the network's key.

Canonical e-mail (from an address ``normalize_email`` accepted)::

    Ann.Smith+promo@GoogleMail.com  ->  annsmith@gmail.com

- lowercase;
- a ``+tag`` is cut from the local part (sub-addressing: Gmail, Outlook, iCloud, Fastmail,
  Proton all deliver ``name+anything`` to ``name``), unless nothing would be left of it;
- for ``gmail.com`` and ``googlemail.com`` (one mailbox, two domains) the domain becomes
  ``gmail.com`` and dots are dropped from the local part, which Gmail ignores. Other
  providers treat dots as significant, so they are kept there.

Canonical phone (from a number ``normalize_phone`` accepted): its last 9 digits (all of
them when it has fewer). That folds the international and national spellings of one
number (``+44 7700 900123``, ``07700 900123``, ``0044 7700 900123``) together without a
table of country codes and trunk prefixes; subscriber numbers are at least 9 digits in
most numbering plans. Two numbers of different countries with the same last 9 digits
share a fingerprint: rare, and an alert is a lead for a person to review, not a verdict.
"""

from __future__ import annotations

import re

from coalition.crypto import NetworkKeys

PHONE_FINGERPRINT_DIGITS = 9
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def canonical_email(email: str) -> str:
    """The form one mailbox's variants share (see the module docstring)."""
    local, _, domain = email.strip().lower().rpartition("@")
    untagged = local.split("+", 1)[0]
    local = untagged or local
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def canonical_phone(phone: str) -> str:
    """The last 9 digits of the number (see the module docstring)."""
    digits = re.sub(r"\D", "", phone)
    return digits[-PHONE_FINGERPRINT_DIGITS:]


def email_fingerprint(keys: NetworkKeys, email: str | None) -> str | None:
    return keys.blind_index("email-fingerprint", canonical_email(email)) if email else None


def phone_fingerprint(keys: NetworkKeys, phone: str | None) -> str | None:
    return keys.blind_index("phone-fingerprint", canonical_phone(phone)) if phone else None
