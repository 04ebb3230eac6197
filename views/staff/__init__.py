"""The support staff console under /staff: customer search, the customer page and its
actions, "view as customer", the audit log (and its CSV export), the webhook inbox.

Staff role only; anyone else gets 404. Every action names a reason and is audited by
its service, with the staff member as the true user.
"""


from views.staff import audit_log, customers, viewing_as, webhooks  # noqa: F401  (their routes)
from views.staff.base import bp

__all__ = ["bp"]
