"""Start and stop "view as customer" (read-only unless the staff member may write)."""

from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    request,
    url_for,
)

from extensions import db
from models import User
from services import uow
from services.errors import TallyError
from services.staff import impersonation
from views.session import (
    actor,
    begin_impersonation,
    current_impersonation,
    end_impersonation,
)
from views.staff.base import bp, staff_page
from views.staff.customers import customer_page
from views.staff.forms import ConfirmForm, ImpersonateForm, field_error

# View as customer -----------------------------------------------------------------------


@bp.post("/users/<user_id>/impersonate")
@staff_page
def impersonate(user_id: str):
    user = db.session.get(User, user_id)
    customer_id = request.form.get("customer_id") or (user.customer_id if user else None)
    if user is None or customer_id is None:
        abort(404)
    form = ImpersonateForm(prefix=f"{user.id}-imp")
    if form.validate_on_submit():
        running = current_impersonation()
        if running is not None:  # one view at a time: end the earlier one first
            impersonation.end(running.id, actor())
            end_impersonation()
        try:
            started = impersonation.start(actor(), user.id, form.reason.data,
                                          minutes=current_app.config["IMPERSONATION_MINUTES"],
                                          customer_id=customer_id)
        except TallyError as exc:
            uow.rollback()
            field_error(form, exc)
        else:
            begin_impersonation(started.impersonation.id)
            return redirect(url_for("pages.dashboard"), code=303)
    return customer_page(customer_id, user_forms={user.id: form}, status=400)


@bp.post("/impersonation/stop")
@staff_page
def stop_impersonation():
    ConfirmForm().validate_on_submit()  # CSRF is checked for every POST by CSRFProtect
    running = current_impersonation()
    impersonation_id = end_impersonation()
    if running is None:
        return redirect(url_for("staff.index"), code=303)
    impersonation.end(impersonation_id or running.id, actor())
    flash("You stopped viewing as the customer.")
    return redirect(url_for("staff.customer", customer_id=running.customer_id), code=303)
