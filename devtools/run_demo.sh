#!/usr/bin/env bash
# `make run`: migrate, seed the demo customer, start localstripe when no Stripe key is
# configured (demo mode), and serve the portal on 127.0.0.1:$PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
FLASK=".venv/bin/flask --app app"
PORT="${PORT:-5000}"
set -a; [ -f .env ] && . ./.env; set +a

if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
  LS_PORT="${LOCALSTRIPE_PORT:-8420}"
  export STRIPE_SECRET_KEY=sk_test_demo STRIPE_PUBLISHABLE_KEY=pk_test_demo
  export STRIPE_API_BASE="http://127.0.0.1:$LS_PORT"
  export STRIPE_JS_URL="http://127.0.0.1:$LS_PORT/js.stripe.com/tally/v3.js"
  export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_tally_demo_mode}"
  mkdir -p instance
  $PY -m devtools.localstripe_ext --port "$LS_PORT" \
    --webhook-url "http://127.0.0.1:$PORT/v1/billing/webhook" \
    --webhook-secret "$STRIPE_WEBHOOK_SECRET" >instance/localstripe.log 2>&1 &
  LS_PID=$!
  trap 'kill $LS_PID 2>/dev/null || true' EXIT INT TERM
  for _ in $(seq 1 100); do
    if $PY -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
         "$STRIPE_JS_URL" 2>/dev/null; then break; fi
    kill -0 "$LS_PID" 2>/dev/null || { cat instance/localstripe.log; exit 1; }
    sleep 0.1
  done
  echo "Demo mode: no STRIPE_SECRET_KEY, so payments go to localstripe on $STRIPE_API_BASE (test mode)."
  # Emails (sign-up links, invoices staff resend) land as .eml files here instead of a mail server.
  export SMTP_URL="${SMTP_URL:-file://$PWD/instance/outbox}"
fi

$FLASK db upgrade >/dev/null
DEMO=$($FLASK seed-demo)
$PY - "$DEMO" "$PORT" <<'PYEOF'
import json, sys
demo, port = json.loads(sys.argv[1]), sys.argv[2]
print(f"""
  Tally is running: http://127.0.0.1:{port}/login
    email     {demo['email']}
    password  {demo['password']}
    API key   {demo['api_key']}
    account   {demo['account_id']}
  Test card 4242 4242 4242 4242, any future date, any CVC.  Ctrl-C stops.
""", flush=True)
PYEOF
$FLASK run --host 127.0.0.1 --port "$PORT"
