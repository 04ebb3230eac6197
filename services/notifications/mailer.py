"""Sending email: invoices to customers. One function, `send`, and one setting, `SMTP_URL`.

- `smtp://user:password@host:587` sends with STARTTLS when the server offers it
  (`smtps://` for TLS from the start, port 465 by default);
- `file:///path/to/outbox` writes each message as an `.eml` file there (demo mode);
- unset: Tally sends no email, and anything that would is refused with a clear error.

`MAIL_FROM` is the sender (default `Tally <billing@localhost>`).
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from flask import current_app

from services.errors import Unavailable


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/pdf"


def configured() -> bool:
    """Whether Tally can send email (SMTP_URL is set)."""
    return bool(current_app.config.get("SMTP_URL"))


def send(to: str, subject: str, body: str, attachments: tuple[Attachment, ...] = (),
         html: str | None = None) -> str:
    """Send one message (plain text, and `html` as its alternative part); returns its
    Message-ID. Raises Unavailable when it cannot."""
    url = current_app.config.get("SMTP_URL") or ""
    if not url:
        raise Unavailable("Tally has no email delivery set up (SMTP_URL), so nothing was sent.",
                          code="email_not_configured")
    message = EmailMessage()
    message["From"] = current_app.config.get("MAIL_FROM") or "Tally <billing@localhost>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="tally.local")
    message.set_content(body)
    if html:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        maintype, _, subtype = item.mimetype.partition("/")
        message.add_attachment(item.content, maintype=maintype, subtype=subtype,
                               filename=item.filename)
    parts = urlsplit(url)
    try:
        if parts.scheme == "file":
            outbox = Path(unquote(parts.path))
            outbox.mkdir(parents=True, exist_ok=True)
            (outbox / f"{uuid.uuid4().hex}.eml").write_bytes(bytes(message))
        elif parts.scheme in ("smtp", "smtps"):
            _smtp(parts, message)
        else:
            raise Unavailable(f"SMTP_URL must start with smtp://, smtps:// or file://, not "
                              f"{parts.scheme}://", code="email_not_configured")
    except (OSError, smtplib.SMTPException) as exc:
        current_app.logger.warning("email to %s not sent: %s", to, exc)
        raise Unavailable("The email could not be sent; try again in a moment.",
                          code="email_failed") from exc
    return str(message["Message-ID"])


def _smtp(parts: SplitResult, message: EmailMessage) -> None:
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    if secure:
        client: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname or "localhost", port, timeout=15,
                                                context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(parts.hostname or "localhost", port, timeout=15)
    with client:
        if not secure and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
