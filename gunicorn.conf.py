"""gunicorn's settings for Tally, read by every gunicorn started in the project folder:
`make serve` (devtools/serve.sh), the multi-worker and chaos tests, a hand-run gunicorn.

Threaded workers (gthread): a client that sends its request slowly holds one thread, not a
whole worker. With 4 sync workers, a dozen connections trickling their headers made every
other request wait 5 s or more; with 4 workers of 16 threads, they hold 12 of 64 threads
and the rest answer at once (tests/test_slow_clients.py). A reverse proxy that buffers
whole requests (nginx, Caddy) in front takes even that away.

Keep-alive: servers call the gate (`POST /v1/authorize`) on every request they serve,
over pooled connections. A kept-alive connection waiting for its next request sits in the
worker's poller, not in a thread, so keeping it open GUNICORN_KEEPALIVE seconds (30) costs
a file descriptor, at most `worker_connections` per worker; a client that pauses between
calls keeps its connection (gunicorn's default closes it after 2 s). tests/test_keep_alive.py.
"""

import os

wsgi_app = "app:create_app()"
bind = os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT') or 8000}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 4)
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS") or 16)
# Imported once in the master; workers fork from it (less memory, and a worker restarted
# after a crash starts at once).
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or 30)
worker_connections = 1000  # open connections per worker, idle kept-alive ones included
graceful_timeout = 30
# Access logs hold no secrets: API keys travel in headers, never in URLs.
accesslog = "-"
errorlog = "-"
