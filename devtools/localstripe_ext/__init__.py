"""localstripe, extended for Tally's tests and demo mode. Never imported by the app.

localstripe (https://github.com/adrienverge/localstripe, GPL-3) is a stateful fake of
Stripe's HTTP API. Tally only talks to it over HTTP, as a separate server process started
with ``python -m devtools.localstripe_ext``; no Tally code imports it or this package.

Layout:

* ``__main__.py``       the launcher: fresh store, no pickle file, 127.0.0.1 only.
* ``extension.py``      the server-side patches and the extra endpoints, each with its reason.
* ``stripe_js_ext.js``  overrides appended to localstripe's fake Stripe.js, served at
  ``/js.stripe.com/tally/v3.js``; point ``STRIPE_JS_URL`` at that URL.
"""
