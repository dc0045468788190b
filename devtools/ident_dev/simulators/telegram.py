"""Telegram Bot API simulator: ``sendMessage`` and ``getMe`` for one bot and known chats.

Public facts it follows:

* Requests go to ``/bot<token>/<method>``, by GET or POST, with parameters in the query
  string, ``application/x-www-form-urlencoded`` or ``application/json``; method names are
  case-insensitive; every answer is ``{"ok": true, "result": ...}`` or ``{"ok": false,
  "error_code": N, "description": "..."}`` — core.telegram.org/bots/api, "Making requests".
  python-telegram-bot (what ``apache-airflow-providers-telegram``'s ``TelegramHook`` uses)
  POSTs form fields to ``{base_url}{token}/{method}``, ``base_url`` defaulting to
  ``https://api.telegram.org/bot`` (``telegram/_bot.py``).
* A wrong token: 401 ``Unauthorized``; an unknown method: 404 ``Not Found``; a chat the bot
  does not know: 400 ``Bad Request: chat not found``; no text: 400 ``Bad Request: message
  text is empty``; over 4096 characters: 400 ``Bad Request: message is too long``
  (core.telegram.org/bots/api#sendmessage; the texts as listed in TelegramBotAPI/errors,
  ``json/unauthorized.json``, ``json/bad-request-chat-not-found.json``,
  ``json/bad-request-message-text-is-empty.json``).
* ``parse_mode=HTML`` (the provider's hook always sets it) accepts only the tags of
  "HTML style" (b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler",
  tg-spoiler, a, code, pre, blockquote, tg-emoji) and the entities ``&lt; &gt; &amp;
  &quot;`` and numeric ones; anything else is 400 ``Bad Request: can't parse entities:
  ...`` (core.telegram.org/bots/api#html-style). The exact wording after the colon is
  ours (Telegram names the tag and the byte offset).
* A sent message is answered with the Message object: ``message_id``, ``from`` (the bot),
  ``chat`` (``id``, ``type``, ``title``), ``date`` (Unix time), ``text`` without markup.

Kept: ``messages`` — every accepted message (chat id, text as sent, parse mode, plain text).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ident_dev.simulators.base import SimRequest, SimResponse, SimulatorServer

MAX_TEXT_CHARS = 4096
HTML_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)?[^>]*>|<")
_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9A-Fa-f]+);)")


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: str
    text: str  # as sent, markup included
    parse_mode: str | None
    plain: str  # what the chat shows


def _error(code: int, description: str) -> SimResponse:
    return SimResponse(code, {"ok": False, "error_code": code, "description": description})


def html_problem(text: str) -> str | None:
    """Why Telegram's HTML parser would refuse ``text``, else None."""
    open_tags: list[str] = []
    for match in _TAG.finditer(text):
        closing, name = match.group(1), (match.group(2) or "").lower()
        offset = len(text[: match.start()].encode("utf-8"))
        if name not in HTML_TAGS:
            return f'Unsupported start tag "{name}" at byte offset {offset}'
        if not closing:
            open_tags.append(name)
        elif not open_tags or open_tags.pop() != name:
            return f"Unexpected end tag at byte offset {offset}"
    if open_tags:
        return f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"'
    bad = _ENTITY.search(text)
    if bad:
        return f"Unsupported HTML entity at byte offset {len(text[: bad.start()].encode())}"
    return None


class TelegramSimulator(SimulatorServer):
    """One bot (``token``, "<bot id>:<secret>") that may write to ``chats`` (id -> title)."""

    name = "telegram"

    def __init__(
        self,
        *,
        token: str,
        chats: dict[str, str],
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.chats = dict(chats)
        self.clock = clock
        self.messages: list[SentMessage] = []
        # httpx may drop a kept-alive connection as its event loop ends (asyncio.run per
        # message in TelegramHook): nothing to report.
        self._httpd.handle_error = lambda request, client_address: None
        for method in ("GET", "POST"):
            self.route(method, f"/bot{token}/sendMessage", self._send_message)
            self.route(method, f"/bot{token}/getMe", self._get_me)
        self._bot = {
            "id": int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1,
            "is_bot": True,
            "first_name": "Ident Alerts",
            "username": "ident_alerts_bot",
        }

    def messages_to(self, chat_id: str) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.messages if m.chat_id == str(chat_id)]

    def authorize(self, request: SimRequest) -> SimResponse | None:
        match = _PATH.match(request.path)
        if match is None:
            return _error(404, "Not Found")
        if match["token"] != self.token:
            return _error(401, "Unauthorized")
        if match["method"] not in ("sendMessage", "getMe"):
            return _error(404, "Not Found")
        return None

    @staticmethod
    def _params(request: SimRequest) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not request.body:
            return params
        if content_type == "application/json":
            body = json.loads(request.body.decode("utf-8"))
            if isinstance(body, dict):
                params.update(body)
        elif content_type == "application/x-www-form-urlencoded":
            form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
        return params

    def _get_me(self, request: SimRequest) -> SimResponse:
        return SimResponse(200, {"ok": True, "result": self._bot})

    def _send_message(self, request: SimRequest) -> SimResponse:
        try:
            params = self._params(request)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "Bad Request: invalid request body")
        chat_id = str(params.get("chat_id") or "").strip()
        if not chat_id:
            return _error(400, "Bad Request: chat_id is empty")
        if chat_id not in self.chats:
            return _error(400, "Bad Request: chat not found")
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode")
        plain = text
        if parse_mode and str(parse_mode).lower() == "html":
            problem = html_problem(text)
            if problem:
                return _error(400, f"Bad Request: can't parse entities: {problem}")
            plain = html.unescape(re.sub(r"<[^>]+>", "", text))
        if not plain.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(plain) > MAX_TEXT_CHARS:
            return _error(400, "Bad Request: message is too long")
        with self._lock:
            message = SentMessage(len(self.messages) + 1, chat_id, text, parse_mode, plain)
            self.messages.append(message)
        chat = {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id,
                "title": self.chats[chat_id], "type": "supergroup"}  # fmt: skip
        result = {
            "message_id": message.message_id,
            "from": self._bot,
            "chat": chat,
            "date": int(self.clock()),
            "text": plain,
        }
        return SimResponse(200, {"ok": True, "result": result})
