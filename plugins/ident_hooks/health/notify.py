"""The alert channels: Telegram and e-mail through Airflow's providers.

* **E-mail** — the SMTP provider's ``SmtpNotifier`` over the connection
  ``email_connection`` of ``include/alerts.yaml`` (host, port, login, password; extras
  ``from_email``, ``disable_ssl``, ``disable_tls`` as the provider documents them).
* **Telegram** — the Telegram provider (4.10) has a hook and an operator but no notifier,
  so :class:`TelegramNotifier` is the provider's ``TelegramHook`` in a ``BaseNotifier``.
  The hook always talks to ``https://api.telegram.org`` (its ``get_conn`` builds
  ``telegram.Bot(token)``, and the connection's ``host`` is taken for the chat id), so
  :class:`TelegramBotHook` adds one connection extra, ``base_url``, passed to
  python-telegram-bot's ``Bot(base_url=...)``: a self-hosted Bot API server
  (``https://tg.example/bot``) or, in tests and the demo, the local simulator
  (``ident_dev.simulators.telegram``). Without it the official server is used.

Notifiers are called with :meth:`notify`, not as callbacks: their texts hold what leads
and services said, which must not be rendered as Jinja templates.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseNotifier

from ident_hooks.health.redact import redact
from ident_hooks.health.settings import AlertsConfig, Destination, load_alerts_config

log = logging.getLogger(__name__)


def _telegram_hook_class() -> type:
    from airflow.providers.telegram.hooks.telegram import TelegramHook

    class TelegramBotHook(TelegramHook):
        """``TelegramHook`` honouring the connection extra ``base_url`` (see the module)."""

        def __init__(self, telegram_conn_id: str | None = None, **kwargs: Any) -> None:
            self._conn_id = telegram_conn_id
            super().__init__(telegram_conn_id=telegram_conn_id, **kwargs)

        def get_conn(self):
            import telegram

            extra = self.get_connection(self._conn_id).extra_dejson if self._conn_id else {}
            base_url = extra.get("base_url")
            if base_url:
                return telegram.Bot(self.token, base_url=base_url)
            return telegram.Bot(self.token)

    return TelegramBotHook


def telegram_hook(conn_id: str, chat_id: str | None = None):
    return _telegram_hook_class()(telegram_conn_id=conn_id, chat_id=chat_id)


class TelegramNotifier(BaseNotifier):
    """Send ``text`` (Telegram HTML) to ``chat_id`` through the bot of ``telegram_conn_id``."""

    template_fields = ("text", "chat_id", "telegram_conn_id")

    def __init__(self, *, telegram_conn_id: str, chat_id: str, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.telegram_conn_id = telegram_conn_id
        self.chat_id = chat_id
        self.text = text

    def notify(self, context: Any) -> None:
        telegram_hook(self.telegram_conn_id, self.chat_id).send_message({"text": self.text})


@dataclass(frozen=True)
class Message:
    """One alert for one destination. ``body`` is Telegram HTML (escaped text, <b>, <i>)."""

    alert_key: str
    kind: str  # outage, recovery, escalation, booking
    destination: Destination
    subject: str
    body: str


@dataclass(frozen=True)
class Delivery:
    channel: str  # telegram or email
    address: str
    error: str | None  # None: delivered


def email_html(message: Message) -> str:
    return (
        '<div style="font-family: sans-serif; font-size: 15px">'
        + message.body.replace("\n", "<br>\n")
        + "</div>"
    )


class Channels:
    """Sends messages through every channel a destination has; each outcome is returned."""

    def __init__(self, alerts_config: AlertsConfig | None = None) -> None:
        self.config = alerts_config or load_alerts_config()

    def send(self, message: Message) -> list[Delivery]:
        deliveries = []
        target = message.destination
        if target.telegram_chat_id:
            notifier = TelegramNotifier(
                telegram_conn_id=self.config.telegram_connection,
                chat_id=target.telegram_chat_id,
                text=message.body,
            )
            deliveries.append(self._attempt("telegram", target.telegram_chat_id, notifier))
        if target.emails:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            notifier = SmtpNotifier(
                to=list(target.emails),
                subject=message.subject,
                html_content=email_html(message),
                smtp_conn_id=self.config.email_connection,
            )
            deliveries.append(self._attempt("email", ", ".join(target.emails), notifier))
        return deliveries

    @staticmethod
    def _attempt(channel: str, address: str, notifier: BaseNotifier) -> Delivery:
        try:
            notifier.notify({})
        except Exception as raised:  # every channel is tried; the failure is recorded
            # TelegramHook retries (tenacity) and raises RetryError: report the last attempt's.
            attempt = getattr(raised, "last_attempt", None)
            error = (attempt.exception() if attempt is not None else None) or raised
            log.warning("could not send a %s alert to %s: %s", channel, address, error)
            return Delivery(channel, address, redact(f"{type(error).__name__}: {error}"))
        return Delivery(channel, address, None)


def escape(text: Any) -> str:
    """Text for a Telegram HTML message (and an e-mail): <, > and & escaped."""
    return html.escape(str(text), quote=False)
