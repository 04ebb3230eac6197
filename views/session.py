"""What a logged-in page works on: the current user's account, and who is really there.

While a staff member views as a customer (impersonation), `current_user` is the customer
user on every page and `true_user()` is the staff member; the audit log records both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user

from extensions import db, login_manager
from models import Impersonation, User
from models.audit import VIA_CONSOLE, VIA_IMPERSONATION
from models.base import utcnow
from services import uow
from services.errors import TallyError, Unauthorized
from services.identity import accounts, sessions, two_factor
from services.staff import impersonation
from services.staff.audit import Actor
from services.staff.rules import PERMISSION_IMPERSONATE_WRITE
from views.errors import FAVICON_ENDPOINT, error_response, wants_json
from views.htmx import is_htmx

# Not logged in ---------------------------------------------------------------------

SESSION_ENDED = "Your session has ended. Log in again to continue."


def same_site_path(target: str | None) -> str | None:
    """`target` as a path on this site (`/keys?x=1`), or None: a URL on another host, a
    scheme-relative `//host` or a backslash a browser would read as one, anything else."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme not in ("", "http", "https") or (parts.scheme and not parts.netloc):
        return None
    if parts.netloc and parts.netloc != request.host:
        return None
    if not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _page_to_return_to() -> str | None:
    """Where to come back to after logging in: the page asked for; for htmx, a script's
    fetch or a form post, the page that was open (htmx names it; fetch and forms send
    the Referer, same-origin only under our Referrer-Policy)."""
    if request.method == "GET" and not is_htmx() and not wants_json():
        candidates = [request.full_path]
    else:
        candidates = [request.headers.get("HX-Current-URL"), request.referrer]
    for candidate in candidates:
        path = same_site_path(candidate)
        if path and urlsplit(path).path not in (url_for("auth.login"), url_for("auth.logout")):
            return path
    return None


def _unauthorized():
    """Flask-Login's answer when a page needs a login (every `login_required`): one place.

    A page: back to the login form. htmx: `HX-Redirect` there, so htmx navigates instead
    of swapping a whole login page into a panel. A script's fetch (JSON): 401
    `login_required` with `login_url`, for the script to show. The login page says why,
    as information; a session that existed and ended (logged out elsewhere, password
    changed) says so.
    """
    ended = session.get("_user_id") is not None
    message = SESSION_ENDED if ended else str(login_manager.login_message)
    login_url = url_for("auth.login", next=_page_to_return_to())
    if wants_json():
        return error_response(Unauthorized(message, code="login_required",
                                           extra={"login_url": login_url}))
    flash(message, "info")
    if is_htmx():
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url
        return response
    return redirect(login_url)


# Impersonation ---------------------------------------------------------------------

IMPERSONATION_KEY = "impersonation_id"  # the session holds only the id; the row decides
SESSION_ID_KEY = "sid"  # the login's row in user_sessions (services/identity/sessions.py)


def load_user(session_id: str) -> User | None:
    """Flask-Login's loader: the logged-in user, or the customer user a staff member is
    viewing as while their impersonation is running. A session from before the user's
    last logout or password change (an older session version) is no session."""
    user = accounts.user_for_session(session_id)
    if user is not None:
        wrote = uow.has_written()
        if sessions.live(session.get(SESSION_ID_KEY), user.id) is None:
            user = None  # this session was ended (on the Account page, or by logging out)
        elif not wrote and uow.has_written():
            uow.commit()  # the last-seen time: its own unit, before the request's work
    g.true_user, g.impersonation = user, None
    impersonation_id = session.get(IMPERSONATION_KEY)
    if user is None or not impersonation_id or not user.is_staff:
        return user
    running = impersonation.get_running(impersonation_id, user.id)
    target = accounts.get_user(running.user_id) if running else None
    if running is None or target is None or target.is_staff:
        return user
    g.impersonation = running
    return target


def true_user() -> User | None:
    """The person really logged in: the staff member even while viewing as a customer."""
    user = current_user._get_current_object()  # runs the loader once per request
    if user is None or not user.is_authenticated:
        return None
    return g.get("true_user") or user


def current_impersonation() -> Impersonation | None:
    true_user()
    return g.get("impersonation")


def actor(via: str | None = None) -> Actor:
    """Who acts, from where: what services record in the audit log."""
    running = current_impersonation()
    staff = true_user()
    return Actor(staff=staff if staff is not None and staff.is_staff else None,
                 via=via or (VIA_IMPERSONATION if running else VIA_CONSOLE),
                 ip=request.remote_addr, user_agent=request.user_agent.string or None,
                 impersonated=current_user._get_current_object() if running else None)


MUST_ENROLL_KEY = "2fa_enroll"  # must turn on two-factor before anything else (views/two_factor.py)


def start_session(user: User) -> None:
    """Log the person in here: a fresh session cookie and a session row of its own. One
    who must use two-factor and has not turned it on is sent to set it up first."""
    session.clear()  # a fresh session at login: nothing carried over from before
    login_user(user)
    row = sessions.start(user, ip=request.remote_addr, user_agent=request.user_agent.string)
    session[SESSION_ID_KEY] = row.id
    if not user.two_factor_enabled and two_factor.required(user):
        session[MUST_ENROLL_KEY] = True


def begin_impersonation(impersonation_id: str) -> None:
    session[IMPERSONATION_KEY] = impersonation_id


def end_impersonation() -> str | None:
    return session.pop(IMPERSONATION_KEY, None)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The only changes a read-only view may make: leaving it.
EXITS = frozenset({"staff.stop_impersonation", "auth.logout"})


def audit_as(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name a view's action in the audit log while viewing as a customer (default: its
    endpoint, such as `billing.cancel`). Only a name: every change is refused or audited
    whether or not its view carries this."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        view.audit_action = action  # type: ignore[attr-defined]  (functools.wraps copies it)
        return view

    return decorate


def _action_name() -> str:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "audit_action", None) or request.endpoint or "request"


def _impersonated_account_id() -> str | None:
    running = current_impersonation()
    try:
        return accounts.customer_account(running.customer_id).id if running else None
    except TallyError:
        return None


def _refusal(refusal: TallyError):
    """JSON for scripts and fetch(); for htmx, a notice swapped into the banner; else a page."""
    if request.headers.get("HX-Request") == "true" and not wants_json():
        response = make_response(render_template("staff/_refusal.html", error=refusal), 403)
        response.headers["HX-Retarget"] = "#impersonation-notice"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return error_response(refusal)


def _guard_change(running: Impersonation):
    """A change asked for while viewing as the customer, on any route: refused (and
    audited) without `impersonate_write`; with it, the view runs and `_audit_change`
    records it with both identities and the account's state before and after."""
    who = actor(VIA_IMPERSONATION)
    assert who.staff is not None
    action, account_id = _action_name(), _impersonated_account_id()
    detail = {"method": request.method, "path": request.full_path.rstrip("?")[:500],
              "endpoint": request.endpoint}
    try:
        impersonation.check_write(who.staff, action)
    except impersonation.ReadOnly as refusal:
        impersonation.record_action(who, running, action, outcome="refused",
                                    account_id=account_id, detail=detail)
        return _refusal(refusal)  # the request's boundary commits the refusal's audit row
    g.impersonation_change = (who, running, action, account_id, detail,
                              impersonation.account_state(account_id))
    return None


def _audit_after(response):
    """After a request while viewing as the customer: the change it made (see
    `_guard_change`), or the page it looked at (folded per path and minute). The row joins
    the request's transaction, so it commits with the work (services/uow.py commits last);
    a failed action was rolled back already, and its row commits alone."""
    change = g.pop("impersonation_change", None)
    if change is not None:
        who, running, action, account_id, detail, before = change
        ok = response.status_code < 400
        impersonation.record_action(
            who, running, action, outcome="done" if ok else "failed", account_id=account_id,
            before=before, after=impersonation.account_state(account_id),
            detail={**detail, "status": response.status_code})
        return response
    running = g.pop("impersonation_viewed", None)
    if running is not None:
        impersonation.record_view(actor(VIA_IMPERSONATION), running,
                                  request.full_path.rstrip("?"), _fetched_as(response))
    return response


def _fetched_as(response) -> str:
    if response.mimetype == "application/pdf":
        return "pdf"
    if request.headers.get("HX-Request") == "true":
        return "htmx"
    if response.is_json or wants_json():
        return "json"
    return "page"


def _guard_impersonation():
    """Before every request, on every blueprint: while viewing as a customer, a read is
    recorded (after it is answered) and anything else is refused unless the staff member
    holds `impersonate_write` (only the exits, Stop and Log out, pass). A view that was
    stopped elsewhere or ran out ends here (back to the staff console)."""
    impersonation_id = session.get(IMPERSONATION_KEY)
    if not impersonation_id or request.endpoint in ("static", FAVICON_ENDPOINT):
        return None
    running = current_impersonation()
    if running is not None:
        return _guard_running(running)
    if request.blueprint in ("api", "webhooks"):
        return None
    return _end_stale_view(impersonation_id)


def _guard_running(running: Impersonation):
    if request.url_rule is None:  # no such route or method: no view runs, nothing changes
        return None
    if request.method in READ_METHODS:
        if request.blueprint != "staff":  # the console is the staff member's own page
            g.impersonation_viewed = running
        return None
    if request.endpoint == "auth.logout":
        impersonation.end(running.id, actor(VIA_IMPERSONATION))  # logging out stops the view
        end_impersonation()
        return None
    if request.endpoint in EXITS:
        return None
    return _guard_change(running)


def _end_stale_view(impersonation_id: str):
    """The view was stopped elsewhere or ran out: say so, and go back to the console."""
    end_impersonation()
    staff = true_user()
    row = db.session.get(Impersonation, impersonation_id)
    if staff is None or row is None or row.staff_user_id != staff.id:
        return None
    row = impersonation.end(row.id, actor(VIA_IMPERSONATION), why=impersonation.ENDED_EXPIRED)
    flash("Your view as the customer has ended: its time ran out." if row and
          row.end_reason == impersonation.ENDED_EXPIRED else
          "Your view as the customer has ended.", "info")
    if request.blueprint == "staff" or request.endpoint in ("auth.login", "auth.logout"):
        return None
    target = url_for("staff.customer", customer_id=row.customer_id) if row else url_for("staff.index")
    if wants_json():
        return error_response(TallyError(
            "Your view as the customer has ended; nothing was done. Start it again from the "
            "staff console.", code="impersonation_ended", status=403, title="Forbidden"))
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def _impersonation_context() -> dict[str, Any]:
    """For base.html: the banner while viewing as a customer, and which navigation to show."""
    try:
        staff = true_user()
    except RuntimeError:
        return {}
    running = current_impersonation() if staff is not None else None
    banner = None
    if running is not None:
        customer_user = current_user._get_current_object()
        left = max(0, int((running.expires_at - utcnow()).total_seconds()))
        banner = {
            "customer": customer_user.customer.name if customer_user.customer else "",
            "customer_email": customer_user.email,
            "staff_email": staff.email if staff else "",
            "expires_at": running.expires_at,
            "seconds_left": left,
            "read_only": PERMISSION_IMPERSONATE_WRITE not in (staff.permissions or []) if staff else True,
            "customer_id": running.customer_id,
        }
    return {"impersonation": banner,
            "staff_console": staff is not None and staff.is_staff and running is None}


def init_app(app: Flask) -> None:
    """Call right after CSRFProtect and before the limiter and the blueprints' own hooks:
    the impersonation guard must run before anything else acts on a request."""
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(_unauthorized)
    app.before_request(_guard_impersonation)
    app.after_request(_audit_after)
    app.context_processor(_impersonation_context)
