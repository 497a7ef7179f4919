"""Delivery bodies per channel kind and the validation of user-given destinations. No ORM here.

Destinations are the user's own input, so they are checked before they are stored and again before use:
- Slack: an incoming-webhook URL (https://api.slack.com/messaging/webhooks): ``https`` on a host of
  ``NOTIFICATIONS_SLACK_HOSTS`` (``hooks.slack.com``), path ``/services/...``, no credentials, no port;
- Telegram: a bot token (``<digits>:<35 characters>``, https://core.telegram.org/bots/api#authorizing-your-bot)
  and a chat id (a number or ``@channelname``); the request goes to ``NOTIFICATIONS_TELEGRAM_API_URL``;
- an origin listed in ``NOTIFICATIONS_LOCAL_ORIGINS`` (empty by default) is accepted as well: a local
  stand-in server for tests and rehearsals, never a host the user picks.
Redirects are never followed (httpx's default), so a webhook cannot bounce the request elsewhere.

Errors: :class:`TransientSendError` (network, timeout, 429, 5xx: the task retries with back-off) and
:class:`PermanentSendError` (a refused destination: logged on the delivery, not retried). Secrets (webhook
URLs, bot tokens) never appear in errors or logs.
"""

from __future__ import annotations

import re
import smtplib
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email

MAX_URL = 500  # characters; real Slack webhook URLs are about 80
TELEGRAM_TOKEN = re.compile(r"^\d{5,15}:[A-Za-z0-9_-]{30,50}$")
TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
SLACK_PATH = re.compile(r"^/services/[A-Za-z0-9/_-]{1,200}$")
MAX_TEXT = 3500  # characters per message: under Telegram's 4096 and Slack's 40,000


class TransientSendError(Exception):
    """Worth retrying: network error, timeout, 429 or 5xx."""


class PermanentSendError(Exception):
    """The destination refused the message (4xx other than 429) or is not usable; not retried."""


class BadDestination(ValueError):
    """A destination the user gave is not acceptable (the message says why, without the secret)."""


def _local_origin(url: str) -> bool:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin in set(settings.NOTIFICATIONS_LOCAL_ORIGINS)


def slack_webhook_check(url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise BadDestination("Slack webhook URL is empty, too long or contains spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadDestination("Slack webhook URL is malformed") from None
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BadDestination("Slack webhook URL must not carry credentials, a query or a fragment")
    if not SLACK_PATH.match(parts.path):
        raise BadDestination("Slack webhook URL must have the path /services/...")
    if _local_origin(url):
        return url
    if parts.scheme != "https" or port is not None or (parts.hostname or "") not in settings.NOTIFICATIONS_SLACK_HOSTS:
        raise BadDestination(f"Slack webhook URL must be https://{settings.NOTIFICATIONS_SLACK_HOSTS[0]}/services/...")
    return url


def telegram_check(bot_token: str, chat_id: str) -> tuple[str, str]:
    bot_token, chat_id = (bot_token or "").strip(), (chat_id or "").strip()
    if not TELEGRAM_TOKEN.match(bot_token):
        raise BadDestination("Telegram bot token must look like 123456789:AA... (from @BotFather)")
    if not TELEGRAM_CHAT.match(chat_id):
        raise BadDestination("Telegram chat id must be a number or @channelname")
    return bot_token, chat_id


def email_check(address: str) -> str:
    address = (address or "").strip()
    if len(address) > 254:
        raise BadDestination("e-mail address is too long")
    try:
        validate_email(address)
    except ValidationError:
        raise BadDestination("not an e-mail address") from None
    return address


def _post(url: str, payload: dict, *, what: str) -> httpx.Response:
    try:
        response = httpx.post(url, json=payload, timeout=settings.NOTIFICATIONS_HTTP_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise TransientSendError(f"{what} unreachable: {type(exc).__name__}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientSendError(f"{what} answered {response.status_code}")
    if response.status_code >= 300:
        raise PermanentSendError(f"{what} refused the message: HTTP {response.status_code}")
    return response


def slack_send(*, webhook_url: str, title: str, body: str) -> None:
    url = slack_webhook_check(webhook_url)
    _post(url, {"text": f"*{title}*\n{body}"[:MAX_TEXT]}, what="Slack webhook")


def telegram_send(*, bot_token: str, chat_id: str, title: str, body: str) -> None:
    bot_token, chat_id = telegram_check(bot_token, chat_id)
    base = settings.NOTIFICATIONS_TELEGRAM_API_URL.rstrip("/")
    if not (base.startswith("https://") or _local_origin(base)):
        raise PermanentSendError("NOTIFICATIONS_TELEGRAM_API_URL must be https (or a local stand-in origin)")
    # https://core.telegram.org/bots/api#sendmessage
    response = _post(
        f"{base}/bot{bot_token}/sendMessage",
        {"chat_id": chat_id, "text": f"{title}\n{body}"[:MAX_TEXT]},
        what="Telegram",
    )
    try:
        ok = response.json().get("ok")
    except ValueError:
        ok = False
    if ok is not True:
        raise PermanentSendError("Telegram did not accept the message (ok is not true)")


EMAIL_TRANSIENT = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError)


def email_send(*, address: str, title: str, body: str) -> None:
    try:
        send_mail(f"[Hoga] {title}", body, settings.NOTIFICATIONS_EMAIL_FROM, [address], fail_silently=False)
    except EMAIL_TRANSIENT as exc:
        raise TransientSendError(f"mail server unavailable: {type(exc).__name__}") from None
    except smtplib.SMTPException as exc:
        raise PermanentSendError(f"mail server refused the message: {type(exc).__name__}") from None
