"""An SMTP sink: a loopback mail server that keeps every message it accepts.

The dialogue follows RFC 5321 (greeting ``220``, ``EHLO``/``HELO``, ``MAIL FROM``, ``RCPT
TO``, ``DATA`` ending in ``<CRLF>.<CRLF>`` with dot-stuffing, ``RSET``, ``NOOP``, ``QUIT``;
``503`` for commands out of order, ``502`` for unknown ones, ``500`` for a line over 512
octets) and RFC 4954 for ``AUTH PLAIN`` and ``AUTH LOGIN`` when the sink is given a login:
it then refuses ``MAIL`` before authentication (``530 5.7.0``) and wrong credentials
(``535 5.7.8``), the replies Postfix gives. No TLS: ``STARTTLS`` is not offered, so a client
must be told not to use it (the SMTP provider's connection extras ``disable_tls`` and
``disable_ssl``). Python's ``smtpd`` is deprecated and ``aiosmtpd`` is not installed, so this
is a small asyncio server of our own, run on its own thread.

Kept: ``messages`` — envelope sender, recipients and the parsed message of each mail.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

MAX_LINE = 512  # RFC 5321 4.5.3.1.4, the command line limit, CRLF included
HOSTNAME = "smtp-sink.local"


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The first text/html or text/plain part, decoded."""
        part = self.message.get_body(preferencelist=("html", "plain"))
        return part.get_content() if part is not None else ""


def _address(argument: str, keyword: str) -> str | None:
    """``FROM:<a@b>`` -> ``a@b``; None when the syntax is wrong."""
    head, _, rest = argument.partition(":")
    if head.strip().upper() != keyword or not rest.strip().startswith("<"):
        return None
    address, closing, _ = rest.strip()[1:].partition(">")
    return address if closing else None


class SmtpSink:
    """``SmtpSink(login=None, password=None).start()``; ``port``, ``messages``, ``stop()``."""

    name = "smtp"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        login: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self._port = host, port
        self.login, self.password = login, password
        self.messages: list[ReceivedMail] = []
        self.sessions = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    def start(self) -> SmtpSink:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._session, self.host, self._port)
            )
            self._port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-sink", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return

        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.messages)

    def connection_extra(self) -> dict[str, object]:
        """The SMTP provider's connection extras that fit this sink (no TLS, no SSL)."""
        return {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 0}

    # -- the dialogue --------------------------------------------------
    def _credentials_ok(self, login: str, password: str) -> bool:
        return login == self.login and password == self.password

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.sessions += 1

        async def reply(line: str) -> None:
            writer.write(line.encode("ascii") + b"\r\n")
            await writer.drain()

        async def read_line() -> bytes | None:
            try:
                line = await reader.readuntil(b"\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            except asyncio.LimitOverrunError:
                return b""
            return line

        greeted = authenticated = False
        mail_from: str | None = None
        recipients: list[str] = []
        needs_auth = self.login is not None
        try:
            await reply(f"220 {HOSTNAME} ESMTP sink")
            while True:
                raw = await read_line()
                if raw is None:
                    return  # the client hung up (the provider closes without QUIT)
                if len(raw) > MAX_LINE:
                    await reply("500 5.5.0 Error: line too long")
                    continue
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                verb, _, argument = line.partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    greeted, mail_from, recipients = True, None, []
                    if verb == "HELO":
                        await reply(f"250 {HOSTNAME}")
                        continue
                    features = ["8BITMIME", "SMTPUTF8", "SIZE 10240000"]
                    if needs_auth:
                        features.append("AUTH PLAIN LOGIN")
                    for feature in [HOSTNAME, *features[:-1]]:
                        await reply(f"250-{feature}")
                    await reply(f"250 {features[-1]}")
                elif verb == "AUTH" and needs_auth:
                    if authenticated:
                        await reply("503 5.5.1 Error: already authenticated")
                        continue
                    mechanism, _, initial = argument.partition(" ")
                    login, password = await self._auth(mechanism.upper(), initial, reply, read_line)
                    if login is None:
                        continue
                    if self._credentials_ok(login, password):
                        authenticated = True
                        await reply("235 2.7.0 Authentication successful")
                    else:
                        await reply("535 5.7.8 Error: authentication failed")
                elif verb == "MAIL":
                    if not greeted:
                        await reply("503 5.5.1 Error: send HELO/EHLO first")
                    elif needs_auth and not authenticated:
                        await reply("530 5.7.0 Authentication required")
                    elif mail_from is not None:
                        await reply("503 5.5.1 Error: nested MAIL command")
                    elif (address := _address(argument.split(" ")[0], "FROM")) is None:
                        await reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                    else:
                        mail_from = address
                        await reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    address = _address(argument, "TO")
                    if mail_from is None:
                        await reply("503 5.5.1 Error: need MAIL command")
                    elif not address:
                        await reply("501 5.5.4 Syntax: RCPT TO:<address>")
                    else:
                        recipients.append(address)
                        await reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    if not recipients:
                        await reply("503 5.5.1 Error: need RCPT command")
                        continue
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    data = await self._data(read_line)
                    if data is None:
                        return
                    with self._lock:
                        self.messages.append(ReceivedMail(mail_from, tuple(recipients), data))
                        number = len(self.messages)
                    mail_from, recipients = None, []
                    await reply(f"250 2.0.0 Ok: queued as {number}")
                elif verb == "RSET":
                    mail_from, recipients = None, []
                    await reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    await reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    await reply("221 2.0.0 Bye")
                    return
                else:
                    await reply("502 5.5.2 Error: command not recognized")
        except ConnectionError:
            return
        finally:
            writer.close()

    @staticmethod
    async def _auth(mechanism, initial, reply, read_line) -> tuple[str | None, str]:
        """Run an AUTH exchange; (login, password), or (None, "") after a refusal."""

        def decode(text: str) -> str | None:
            try:
                return base64.b64decode(text.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None

        async def ask(prompt: str) -> str | None:
            await reply(f"334 {prompt}")
            answer = await read_line()
            return None if answer is None else answer.decode("ascii", "replace").strip()

        if mechanism == "PLAIN":
            response = initial or await ask("")
            decoded = decode(response or "")
            parts = decoded.split("\x00") if decoded is not None else []
            if len(parts) != 3:
                await reply("501 5.5.2 Error: invalid AUTH PLAIN response")
                return None, ""
            return parts[1], parts[2]
        if mechanism == "LOGIN":
            login = decode(initial) if initial else decode(await ask("VXNlcm5hbWU6") or "")
            password = decode(await ask("UGFzc3dvcmQ6") or "")
            if login is None or password is None:
                await reply("501 5.5.2 Error: invalid AUTH LOGIN response")
                return None, ""
            return login, password
        await reply("504 5.5.4 Error: unsupported authentication mechanism")
        return None, ""

    @staticmethod
    async def _data(read_line) -> bytes | None:
        lines = []
        while True:
            raw = await read_line()
            if raw is None:
                return None
            if raw in (b".\r\n", b".\n"):
                return b"".join(lines)
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
