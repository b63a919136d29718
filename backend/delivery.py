"""Sending queued notifications: signed webhooks and e-mail over SMTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

import requests

from backend.app import Runtime
from backend.models import User
from backend.services.notifications import claim_due, record_result

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-SOS-Signature"
TIMESTAMP_HEADER = "X-SOS-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of ``timestamp.body``; receivers recompute it to verify."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class Outcome:
    error: str | None = None
    permanent: bool = False


def send_webhook(url: str, secret: str, payload: dict, timeout: float = 10) -> Outcome:
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "SOS-notifications",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        return Outcome(f"{type(exc).__name__}: {exc}")
    if response.ok:
        return Outcome()
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    return Outcome(f"HTTP {response.status_code}", permanent=permanent)


def send_email(runtime: Runtime, to: str, payload: dict) -> Outcome:
    settings = runtime.settings
    if not settings.smtp_host:
        return Outcome("e-mail is not configured (SOS_SMTP_HOST)", permanent=True)
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = payload["text"][:150]
    message.set_content(payload["text"] + "\n\n" + json.dumps(payload["case"], indent=2))
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(f"{type(exc).__name__}: {exc}")
    return Outcome()


def deliver_due(runtime: Runtime) -> int:
    """Send what is due; returns how many were tried. Safe in several processes at once."""
    with runtime.store.write() as s:
        due = [
            (n.id, n.channel, dict(n.payload), s.get(User, n.user_id))
            for n in claim_due(s, runtime.context())
        ]
        targets = {
            nid: (user.notify_webhook_url, user.notify_webhook_secret, user.email)
            for nid, _, _, user in due
        }
    for nid, channel, payload, _user in due:
        url, secret, email = targets[nid]
        if channel == "webhook":
            outcome = (
                send_webhook(url, secret, payload)
                if url and secret
                else Outcome("webhook no longer configured", permanent=True)
            )
        else:
            outcome = (
                send_email(runtime, email, payload)
                if email
                else Outcome("no e-mail address", permanent=True)
            )
        if outcome.error:
            log.warning("notification %s (%s) failed: %s", nid, channel, outcome.error)
        with runtime.store.write() as s:
            record_result(s, runtime.context(), nid, outcome.error, permanent=outcome.permanent)
    return len(due)


def start_dispatcher(runtime: Runtime, interval: float = 2.0) -> threading.Thread:
    """Deliver notifications in the background.

    Those this process queues go out at once; the rest (queued by other processes, or due
    again after a failure) within ``interval``. Other changes do not wake it: most cases
    queue no notification, and a look at the queue per change would cost a transaction.
    """

    def loop() -> None:
        while True:
            version = runtime.outbox.version
            try:
                while deliver_due(runtime):
                    pass
            except Exception:  # noqa: BLE001 - keep the worker alive; next round retries
                log.exception("notification delivery failed")
            runtime.outbox.wait(version, interval)

    thread = threading.Thread(target=loop, name="sos-notifications", daemon=True)
    thread.start()
    return thread
