"""A wallet as a ChainSecured client holds one: it signs EIP-712 BillingAuth messages with
eth-account and sends them as `X-Wallet-Auth: base64(JSON {typed_data, signature})`."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from services.identity.eth import Account


class Wallet:
    def __init__(self) -> None:
        self.account = Account.create()
        self.address = self.account.address  # EIP-55 checksum case

    def typed_data(self, *, domain: str = "Tally", issued_at: int | None = None,
                   wallet: str | None = None, **extra: Any) -> dict[str, Any]:
        fields = [{"name": "wallet", "type": "address"}, {"name": "issuedAt", "type": "uint256"}]
        message: dict[str, Any] = {"wallet": wallet or self.address,
                                   "issuedAt": int(time.time()) if issued_at is None else issued_at}
        for name, value in extra.items():  # e.g. a nonce, so two messages in a second differ
            fields.append({"name": name, "type": "string"})
            message[name] = value
        return {"types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                           {"name": "version", "type": "string"}],
                          "BillingAuth": fields},
                "primaryType": "BillingAuth", "domain": {"name": domain, "version": "1"},
                "message": message}

    def proof(self, typed_data: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """`{typed_data, signature}`: the body of POST /v1/wallets."""
        data = typed_data or self.typed_data(**options)
        signed = self.account.sign_typed_data(full_message=data)
        return {"typed_data": data, "signature": "0x" + signed.signature.hex().removeprefix("0x")}

    def header(self, **options: Any) -> dict[str, str]:
        """A fresh `X-Wallet-Auth` header."""
        return auth_header(self.proof(**options))


def auth_header(proof: dict[str, Any]) -> dict[str, str]:
    return {"X-Wallet-Auth": base64.b64encode(json.dumps(proof).encode()).decode()}
