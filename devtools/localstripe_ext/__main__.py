"""Start the extended localstripe on 127.0.0.1.

    python -m devtools.localstripe_ext --port 8420 \\
        [--webhook-url http://127.0.0.1:5000/stripe/webhook --webhook-secret whsec_...] \\
        [--public-url http://localhost:8420]

Unlike ``localstripe`` itself, this always starts from an empty store, never reads or
writes /tmp/localstripe.pickle (see ``extension.py``), and listens on 127.0.0.1 only
(``localstripe.server.start()`` binds every interface). Prints
``localstripe-ext listening on http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from . import extension


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.localstripe_ext")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--webhook-url", help="deliver every event to this URL")
    parser.add_argument("--webhook-secret", help="signing secret (whsec_...) for --webhook-url")
    parser.add_argument(
        "--public-url",
        help="origin browsers reach this server at, for hosted Checkout/portal page URLs "
        "(default: http://127.0.0.1:PORT)",
    )
    args = parser.parse_args(argv)
    if bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")

    url = f"http://127.0.0.1:{args.port}"
    extension.install(public_url=args.public_url or url)
    from localstripe import server, webhooks  # Only now: the import registers the routes.

    extension.add_routes(server.app)
    if args.webhook_url:
        # What POST /_config/webhooks/{id} does.
        webhooks.register_webhook("tally", args.webhook_url, args.webhook_secret, None)

    # Requests and webhook deliveries are logged to stderr, as localstripe does.
    access_log = logging.getLogger("aiohttp.access")
    access_log.setLevel(logging.INFO)
    access_log.addHandler(logging.StreamHandler(sys.stderr))

    web.run_app(
        server.app,
        host="127.0.0.1",
        port=args.port,
        access_log=access_log,
        print=lambda *_: print(f"localstripe-ext listening on {url}", flush=True),
    )


if __name__ == "__main__":
    main()
