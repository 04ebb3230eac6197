"""eth-account, imported without its side effect on the interpreter.

py_ecc (imported by eth-account) raises the recursion limit to 100000 when imported. With
that limit, a deeply nested JSON body overflows the C stack while being parsed: the worker
dies of a segmentation fault instead of answering 400 (a RecursionError). The limit is put
back as it was.
"""

import sys

_LIMIT = sys.getrecursionlimit()

from eth_account import Account  # noqa: E402
from eth_account.messages import SignableMessage, encode_typed_data  # noqa: E402

sys.setrecursionlimit(_LIMIT)

__all__ = ["Account", "SignableMessage", "encode_typed_data"]
