"""The Account page's "Sign with my browser wallet" in Chromium, with an EIP-1193 wallet
(`window.ethereum`) injected into the page whose signatures come from eth-account: the
page's script builds the BillingAuth typed data, the wallet signs it, and the wallet is
linked and then signs API requests."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import login
from tests.support.wallets import Wallet, auth_header

FAKE_WALLET = """
window.ethereum = {
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts") return [await window.walletAddress()];
    if (method === "eth_signTypedData_v4") return await window.walletSign(params[0], params[1]);
    throw new Error("unsupported " + method);
  },
};
"""


@pytest.mark.e2e
def test_a_browser_wallet_links_itself_on_the_account_page(new_page, customer, live_server):
    wallet = Wallet()
    signed: list[dict] = []

    def sign(address: str, typed_data: str) -> str:
        assert address == wallet.address
        data = json.loads(typed_data)
        signed.append(data)
        return wallet.proof(data)["signature"]

    page = new_page()
    page.expose_function("walletAddress", lambda: wallet.address)
    page.expose_function("walletSign", sign)
    page.add_init_script(FAKE_WALLET)
    login(page, customer)
    page.goto("/account")
    expect(page.get_by_text("No wallets linked.")).to_be_visible()
    page.get_by_role("button", name="Sign with my browser wallet").click()
    expect(page.locator("table.wallets")).to_contain_text(wallet.address)
    assert signed[0]["primaryType"] == "BillingAuth" and signed[0]["domain"]["name"] == "Tally"

    # The linked wallet now signs API requests for the account.
    request = urllib.request.Request(live_server.url + "/v1/billing/balance",
                                     headers=auth_header(wallet.proof(nonce="api")))
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["balance_display"] == "$0.00 credit"

    page.get_by_role("button", name="Unlink").click()
    expect(page.get_by_text("No wallets linked.")).to_be_visible()
