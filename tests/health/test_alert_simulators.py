"""The Telegram Bot API simulator and the SMTP sink refuse what the real services refuse."""

from __future__ import annotations

import smtplib

import pytest
import requests
from alert_targets import BOT_TOKEN, DATA_CHAT, SMTP_LOGIN, SMTP_PASSWORD


def test_telegram_refuses_a_wrong_token_and_an_unknown_chat(telegram):
    url = f"{telegram.base_url}/bot{BOT_TOKEN}/sendMessage"
    wrong = requests.post(f"{telegram.base_url}/bot1:nope/sendMessage", data={"chat_id": DATA_CHAT})
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    unknown = requests.post(url, json={"chat_id": "-42", "text": "x"})
    assert (unknown.status_code, unknown.json()["description"]) == (
        400,
        "Bad Request: chat not found",
    )
    empty = requests.post(url, data={"chat_id": DATA_CHAT, "text": ""})
    assert empty.json()["description"] == "Bad Request: message text is empty"
    bad_html = requests.post(
        url, data={"chat_id": DATA_CHAT, "text": "<Response [500]>", "parse_mode": "HTML"}
    )
    assert bad_html.status_code == 400
    assert bad_html.json()["description"].startswith("Bad Request: can't parse entities")
    ok = requests.post(
        url, data={"chat_id": DATA_CHAT, "text": "<b>UIS</b> &lt;500&gt;", "parse_mode": "HTML"}
    )
    assert ok.json()["ok"] is True and ok.json()["result"]["text"] == "UIS <500>"
    assert [m.plain for m in telegram.messages] == ["UIS <500>"]


def test_smtp_sink_requires_authentication_and_keeps_what_it_accepts(smtp):
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        client.ehlo()
        code, _ = client.mail("a@clinic.example")
        assert code == 530  # authentication required
        client.rset()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(SMTP_LOGIN, "wrong")
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls()
        client.login(SMTP_LOGIN, SMTP_PASSWORD)
        client.sendmail(SMTP_LOGIN, ["b@clinic.example"], b"Subject: hi\r\n\r\n.dot\r\nbody\r\n")
    (mail,) = smtp.received()
    assert mail.rcpt_to == ("b@clinic.example",) and mail.subject == "hi"
    assert mail.text.splitlines() == [".dot", "body"]  # dot-stuffing undone
