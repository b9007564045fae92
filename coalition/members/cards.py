"""Cards a member can hold: the QR code (PNG, SVG), a printable card (PDF) and a wallet pass.

The QR code carries the network-signed payload (``NetworkKeys.qr_payload``), which any till
verifies offline. Drawn with segno (pure Python, maintained, no dependencies).

The printable card is a credit-card-sized page (85.6 x 54 mm) drawn with matplotlib, which the
reports already use and which writes PDF itself (no reportlab: it is not a dependency).

The wallet pass (``.pkpass``) is a zip of ``pass.json``, ``icon.png``, ``manifest.json`` (the
SHA-1 of every other file, as the format asks) and, when a certificate and its key are
configured (``COALITION_PASS_CERTIFICATE_FILE``, ``COALITION_PASS_KEY_FILE``, PEM), a
``signature``: a detached PKCS #7 signature of the manifest made with ``cryptography``. Without
them the pass is unsigned (a wallet app refuses it, a developer tool opens it).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import segno

from coalition.db import Database

CARD_SIZE_IN = (85.6 / 25.4, 54 / 25.4)


@dataclass(frozen=True)
class CardFace:
    network_name: str
    loyalty_id: str
    qr_payload: str


def qr_png(payload: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(payload: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(buffer, kind="svg", scale=scale, border=4, xmldecl=True)
    return buffer.getvalue()


def card_pdf(face: CardFace) -> bytes:
    """A printable card: the network's name, the loyalty ID and the QR code."""
    return printable_card(face.network_name, "Member card", face.loyalty_id, face.qr_payload,
                          "Show this card at any partner")


def printable_card(network_name: str, title: str, text: str, qr_payload: str, footer: str, *,
                   text_size: float = 10, document_title: str | None = None) -> bytes:
    """A credit-card-sized PDF page: the network's name, a title, a line of monospace ``text`` (the
    loyalty ID, a gift card's code), a footer and the QR code of ``qr_payload``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    matrix = [[1 - int(bool(v)) for v in row] for row in segno.make(qr_payload, error="m", micro=False).matrix]
    figure = Figure(figsize=CARD_SIZE_IN)
    figure.patch.set_facecolor("white")
    figure.text(0.06, 0.84, network_name, fontsize=11, weight="bold")
    figure.text(0.06, 0.70, title, fontsize=7, color="#555555")
    figure.text(0.06, 0.16, text, fontsize=text_size, family="monospace")
    figure.text(0.06, 0.07, footer, fontsize=5.5, color="#555555")
    axes = figure.add_axes((0.56, 0.1, 0.40, 0.40 * CARD_SIZE_IN[0] / CARD_SIZE_IN[1]))
    axes.imshow(matrix, cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    axes.set_axis_off()
    buffer = io.BytesIO()
    document_title = document_title or f"{network_name} {title.lower()}"
    figure.savefig(buffer, format="pdf", metadata={"Title": document_title,
                                                   "Creator": "Coalition", "CreationDate": None})
    return buffer.getvalue()


@dataclass(frozen=True)
class PassSigner:
    certificate_pem: bytes
    key_pem: bytes

    @classmethod
    def from_files(cls, certificate: Path | None, key: Path | None) -> PassSigner | None:
        if certificate is None or key is None:
            return None
        return cls(certificate.read_bytes(), key.read_bytes())

    def sign(self, manifest: bytes) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.serialization import pkcs7

        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        return (pkcs7.PKCS7SignatureBuilder().set_data(manifest)
                .add_signer(certificate, key, hashes.SHA256())  # type: ignore[arg-type]
                .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))


def wallet_pass(face: CardFace, *, serial: str, pass_type_identifier: str, team_identifier: str,
                signer: PassSigner | None) -> bytes:
    """The ``.pkpass`` file (see the module docstring)."""
    pass_json = {
        "formatVersion": 1, "passTypeIdentifier": pass_type_identifier, "teamIdentifier": team_identifier,
        "serialNumber": serial, "organizationName": face.network_name, "description": "Member card",
        "storeCard": {"primaryFields": [{"key": "member", "label": "Loyalty ID", "value": face.loyalty_id}]},
        "barcodes": [{"format": "PKBarcodeFormatQR", "message": face.qr_payload, "messageEncoding": "iso-8859-1",
                      "altText": face.loyalty_id}],
    }
    files = {"pass.json": json.dumps(pass_json, indent=2).encode(), "icon.png": qr_png(face.qr_payload, scale=1)}
    manifest = json.dumps({name: hashlib.sha1(data).hexdigest() for name, data in files.items()},
                          indent=2, sort_keys=True).encode()
    files["manifest.json"] = manifest
    if signer is not None:
        files["signature"] = signer.sign(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def card_holder(db: Database, member_id: int) -> tuple[str, int | None] | None:
    """The member's loyalty ID and enrolling merchant, or None when there is no such member."""
    from sqlalchemy import select

    from coalition.members.models import Member

    async with db.read() as conn:
        row = (await conn.execute(select(Member.loyalty_id, Member.enrolled_by_merchant_id)
                                  .where(Member.id == member_id))).first()
    return None if row is None else (row[0], row[1])
