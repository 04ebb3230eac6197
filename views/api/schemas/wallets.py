"""Wallets linked to an account (ChainSecured wallet auth, services/identity/wallets.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from views.api.schemas.common import AccountId, Answer, ListOf, Request, Says, Time

ADDRESS = Field(description="The wallet's Ethereum address (EIP-55 checksum case).",
                examples=["0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"])


class Wallet(Answer):
    address: str = ADDRESS
    object: Literal["wallet"] = "wallet"
    account_id: AccountId
    created_at: Time


class WalletList(ListOf[Wallet]):
    pass


class UnlinkedWallet(Wallet):
    deleted: Literal[True] = True


class WalletProofRequest(Request):
    """A `BillingAuth` message signed by the wallet: the same `typed_data` and `signature` an
    X-Wallet-Auth header carries, proving the caller holds the wallet."""

    typed_data: Annotated[dict[str, Any], Field(
        description="EIP-712 typed data: `primaryType` `BillingAuth`, `domain.name` `Tally` (or "
                    "TALLY_WALLET_AUTH_DOMAIN), `message` `{wallet, issuedAt}` with issuedAt in "
                    "unix seconds within 5 minutes of the server's clock.",
        examples=[{"types": {"EIP712Domain": [{"name": "name", "type": "string"}],
                             "BillingAuth": [{"name": "wallet", "type": "address"},
                                             {"name": "issuedAt", "type": "uint256"}]},
                   "primaryType": "BillingAuth", "domain": {"name": "Tally"},
                   "message": {"wallet": "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4",
                               "issuedAt": 1796544000}}]),
        Says("typed_data must be EIP-712 typed data (an object).",
             missing="typed_data is required: the signed BillingAuth typed data.")]
    signature: Annotated[str, Field(pattern="^0x[0-9a-fA-F]{130}$", examples=["0x1b2c...1c"]), Says(
        "signature must be 0x and 130 hex digits (r, s, v).",
        missing="signature is required: the wallet's EIP-712 signature of typed_data.")]
