// The Account page's "Sign with my browser wallet": an EIP-1193 wallet (window.ethereum)
// signs a BillingAuth message (EIP-712, eth_signTypedData_v4), which is then posted as
// the proof that links the wallet. Without such a wallet the button stays hidden and the
// proof can be pasted instead.
(() => {
  const form = document.getElementById("wallet-link");
  const button = document.getElementById("wallet-sign");
  if (!form || !button || !window.ethereum) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const [wallet] = await window.ethereum.request({ method: "eth_requestAccounts" });
    const typedData = {
      types: {
        EIP712Domain: [{ name: "name", type: "string" }],
        BillingAuth: [{ name: "wallet", type: "address" }, { name: "issuedAt", type: "uint256" }],
      },
      primaryType: "BillingAuth",
      domain: { name: form.dataset.domain },
      message: { wallet, issuedAt: Math.floor(Date.now() / 1000) },
    };
    const signature = await window.ethereum.request({
      method: "eth_signTypedData_v4", params: [wallet, JSON.stringify(typedData)],
    });
    form.elements.proof.value = JSON.stringify({ typed_data: typedData, signature });
    form.requestSubmit();
  });
})();
