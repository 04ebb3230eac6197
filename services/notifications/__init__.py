"""Notifications: email queued with its cause in the outbox, delivered after the commit."""

from services.notifications.emails import queue_email
from services.notifications.mailer import configured as email_configured

__all__ = ["email_configured", "queue_email"]
