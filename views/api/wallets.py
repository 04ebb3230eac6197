"""ChainSecured wallets: link, list and unlink the wallets that may sign for an account."""

from __future__ import annotations

from eth_utils.address import to_checksum_address
from flask import current_app

from models import WalletLink
from services.identity import members, wallets
from services.pagination import paginate_list
from views.api import ACCOUNT_KEY, account, bp
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.wallets import UnlinkedWallet, Wallet, WalletList, WalletProofRequest

TAG = "Wallets"


def wallet_answer(row: WalletLink) -> Wallet:
    return Wallet(address=to_checksum_address(row.address), account_id=row.account_id,
                  created_at=row.created_at)


@bp.get("/wallets")
@operation(ACCOUNT_KEY, TAG, "The account's wallets", WalletList, query=PageQuery,
           description="Oldest first; a cursor is an address.", permission=members.READ)
def list_wallets(query: PageQuery) -> WalletList:
    rows = wallets.list_for(account().id)
    return WalletList.of(paginate_list(rows, lambda row: to_checksum_address(row.address),
                                       **query.page()), wallet_answer)


@bp.post("/wallets")
@operation(ACCOUNT_KEY, TAG, "Link a wallet", Wallet, status=201, body=WalletProofRequest,
           errors=(409,),
           description="The body is a BillingAuth message the wallet signed (as in X-Wallet-Auth), "
                       "proving the caller holds it; each signed message links once. The wallet "
                       "may then sign requests as an account key of this account. 409 "
                       "`wallet_linked_elsewhere` when another account has it. A linked wallet "
                       "acts as the owner, so only an owner's key links one.",
           permission=members.OWNERSHIP)
def link_wallet(body: WalletProofRequest) -> tuple[Wallet, int]:
    row = wallets.link(account(), body.typed_data, body.signature,
                       domain_name=current_app.config["WALLET_AUTH_DOMAIN"])
    return wallet_answer(row), 201


@bp.delete("/wallets/<address>")
@operation(ACCOUNT_KEY, TAG, "Unlink a wallet", UnlinkedWallet, errors=(404,),
           description="Its signatures get 401 `wallet_not_linked` from then on.",
           permission=members.OWNERSHIP)
def unlink_wallet(address: str) -> UnlinkedWallet:
    row = wallets.unlink(account(), address)
    return UnlinkedWallet(**wallet_answer(row).model_dump())
