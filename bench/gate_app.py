"""The Tally app plus one bare JSON route, for bench/gate.py only (never used by the app).

    gunicorn 'bench.gate_app:app'
"""

from app import create_app
from extensions import csrf

app = create_app()


@app.post("/bench/bare")
@csrf.exempt
def bare():
    return {"ok": True}
