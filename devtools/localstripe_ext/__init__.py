"""localstripe, extended for Tally's tests and demo mode. Never imported by the app.

localstripe (https://github.com/adrienverge/localstripe, GPL-3) is a stateful fake of
Stripe's HTTP API. Tally only talks to it over HTTP, as a separate server process started
with ``python -m devtools.localstripe_ext``; no Tally code imports it or this package.

Layout:

* ``__main__.py``       the launcher: fresh store, no pickle file, 127.0.0.1 only.
* ``api_version.py``    the shapes of Stripe API version 2026-10-28.endive, which every answer
  and event has; invoice payments; Stripe's test payment method ids.
* ``extension.py``      the server-side patches and the extra endpoints, each with its reason;
  ``ROUTES`` lists every added API route, ``add_routes`` the non-JSON ones.
* ``billing.py``        Prices (backed by same-id Plans), subscription and invoice patches,
  and the test-only renewal simulator ``POST /_ext/subscriptions/{id}/renew``.
* ``checkout.py``       Checkout Sessions and the hosted payment page.
* ``portal.py``         Customer Portal configurations and sessions and the hosted portal page.
* ``common.py``         Stripe-shaped errors, parameter parsing, events, HTML page helpers.
* ``stripe_js_ext.js``  overrides appended to localstripe's fake Stripe.js, served at
  ``/js.stripe.com/tally/v3.js``; point ``STRIPE_JS_URL`` at that URL.

``README.md`` lists the endpoints, the object shapes, the hosted pages and the renewal
simulator, with what differs from Stripe.
"""
