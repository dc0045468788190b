"""Which of the clinic's patient cards a lead may be, graded; never a change to a card.

Names are compared as words: lower case, ё read as е, runs of letters (a hyphenated surname
is one word); punctuation and extra spaces do not count. A card's full name is «Фамилия Имя
Отчество», so its first word is the surname and its second the given name.

A lead's name **agrees** with a card when either

* *strictly*: every word of the lead's name is one of the card's words (a one-letter word is
  an initial and stands for any card word starting with it), and at least one whole word is
  the card's surname or given name — «Мария», «мария иванова», «Иванова М.» agree with
  «Иванова Мария Сергеевна»; «Сергеевна» alone does not; or
* *loosely*: the lead's words hold both the card's surname and given name, whatever else
  they hold («Иванова Мария (мама)»).

Among the cards on the lead's phone the strict agreements count first; the loose ones only
when no card agrees strictly. Grades:

* **certain** — the lead's phone (E.164) is a phone of the card and the name agrees with
  exactly that one of the cards on the phone;
* **probable** — the phone belongs to exactly one card and the name does not confirm it
  (no name, another name);
* **possible** — the phone is shared by several cards (a family): every card on it is
  listed, and a card whose name agrees (the only one that does) is ``certain`` instead;
  also a **close name**: a card with no match by phone whose e-mail is the lead's e-mail
  (case and surrounding spaces aside) and whose surname and given name are both among the
  lead's words, each exactly or with one typo (one letter added, dropped or replaced, in
  words of four letters or more). Leads carry no birth date, so without an e-mail a name
  alone never makes a match: the clinic has many namesakes.

A phone alone never makes two cards one person, and nothing here writes to ``clinic.*``.
Matching a lead costs two indexed lookups per batch (the E.164 phone index and the e-mail
index of migration 0024); the grading itself is plain Python over the few cards found.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

CERTAIN, PROBABLE, POSSIBLE = "certain", "probable", "possible"
# Shown to the front desk beside the suggested card.
REASONS = {
    "phone_and_name": "телефон и имя совпадают с картой",
    "phone_only": "телефон совпадает, имя не подтверждает",
    "shared_phone": "общий телефон нескольких карт (семья)",
    "close_name": "похожее имя и тот же e-mail, телефон другой",
}
# Matching on arrival holds this lock shared and the re-match holds it exclusively, so a
# lead stored while cards are re-indexed is matched against the new index or seen by the
# re-match, never neither. Any constant works: it only has to be the same everywhere.
MATCHING_LOCK_KEY = 0x1DE7_0020
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_TYPO_MIN_LETTERS = 4


def name_words(name: str | None) -> tuple[str, ...]:
    """The words of a name as compared: «  ПЁТР  Иванов-Седых » → ('петр', 'иванов-седых')."""
    if not name:
        return ()
    return tuple(_WORD.findall(name.lower().replace("ё", "е")))


def normal_email(email: str | None) -> str | None:
    text = (email or "").strip().lower()
    return text or None


@dataclass(frozen=True, slots=True)
class Card:
    patient_id: str
    words: tuple[str, ...]  # name_words of the card's full name

    @property
    def surname(self) -> str | None:
        return self.words[0] if self.words else None

    @property
    def given_name(self) -> str | None:
        return self.words[1] if len(self.words) > 1 else None


@dataclass(frozen=True, slots=True)
class Match:
    patient_id: str
    grade: str
    reason: str


def _word_in(word: str, card_words: Sequence[str]) -> bool:
    if len(word) == 1:
        return any(card_word.startswith(word) for card_word in card_words)
    return word in card_words


def agrees_strictly(lead: Sequence[str], card: Card) -> bool:
    if not lead or not card.words:
        return False
    names = {card.surname, card.given_name}
    return all(_word_in(word, card.words) for word in lead) and any(
        len(word) > 1 and word in names for word in lead
    )


def agrees_loosely(lead: Sequence[str], card: Card) -> bool:
    return card.given_name is not None and {card.surname, card.given_name} <= set(lead)


def one_edit_apart(a: str, b: str) -> bool:
    """Equal, or one letter added, dropped or replaced (only in words of 4+ letters)."""
    if a == b:
        return True
    if min(len(a), len(b)) < _TYPO_MIN_LETTERS or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def close_name(lead: Sequence[str], card: Card) -> bool:
    if card.given_name is None or len(lead) < 2:
        return False
    surname = [i for i, word in enumerate(lead) if one_edit_apart(word, card.surname)]
    given = [i for i, word in enumerate(lead) if one_edit_apart(word, card.given_name)]
    return any(s != g for s in surname for g in given)


def grade(
    lead_name: str | None, phone_cards: Sequence[Card], email_cards: Sequence[Card] = ()
) -> list[Match]:
    """Every card the lead may be: ``phone_cards`` share its phone, ``email_cards`` its
    e-mail. Pure; the rules are the module's docstring."""
    words = name_words(lead_name)
    matches: list[Match] = []
    agreeing = [c for c in phone_cards if agrees_strictly(words, c)] or [
        c for c in phone_cards if agrees_loosely(words, c)
    ]
    confirmed = agreeing[0].patient_id if len(agreeing) == 1 else None
    for card in phone_cards:
        if card.patient_id == confirmed:
            matches.append(Match(card.patient_id, CERTAIN, REASONS["phone_and_name"]))
        elif len(phone_cards) == 1:
            matches.append(Match(card.patient_id, PROBABLE, REASONS["phone_only"]))
        else:
            matches.append(Match(card.patient_id, POSSIBLE, REASONS["shared_phone"]))
    on_phone = {card.patient_id for card in phone_cards}
    for card in email_cards:
        if card.patient_id not in on_phone and close_name(words, card):
            matches.append(Match(card.patient_id, POSSIBLE, REASONS["close_name"]))
    return matches


def _cards(rows: Iterable[tuple[str, str, str | None]]) -> dict[str, dict[str, Card]]:
    """``{key: {patient_id: card}}`` from (key, patient_id, full_name) rows."""
    found: dict[str, dict[str, Card]] = defaultdict(dict)
    for key, patient_id, full_name in rows:
        found[key][patient_id] = Card(patient_id, name_words(full_name))
    return found


def match_leads(conn: psycopg.Connection, lead_ids: Sequence[int]) -> int:
    """Match the leads in the caller's transaction, replacing their rows in
    ``integration.lead_patient_matches`` (the front desk's choices are another table and
    stay as they are). Returns the number of match rows written."""
    if not lead_ids:
        return 0
    conn.execute("select pg_advisory_xact_lock_shared(%s)", (MATCHING_LOCK_KEY,))
    leads = conn.execute(
        "select lead_id, name, phone_e164, email from integration.leads where lead_id = any(%s)",
        (list(lead_ids),),
    ).fetchall()
    phones = sorted({phone for _, _, phone, _ in leads if phone})
    emails = sorted({e for e in (normal_email(email) for *_, email in leads) if e})
    by_phone = _cards(
        conn.execute(
            "select i.phone_e164, p.patient_id, p.full_name"
            "  from integration.patient_phone_index i"
            "  join clinic.patients p using (patient_id)"
            " where i.phone_e164 = any(%s)",
            (phones,),
        )
        if phones
        else ()
    )
    by_email = _cards(
        conn.execute(
            "select lower(btrim(email)), patient_id, full_name from clinic.patients"
            " where lower(btrim(email)) = any(%s) and email is not null and btrim(email) <> ''",
            (emails,),
        )
        if emails
        else ()
    )
    rows: list[tuple[int, Match]] = []
    for lead_id, name, phone, email in leads:
        phone_cards = sorted(by_phone.get(phone, {}).values(), key=lambda c: c.patient_id)
        email_cards = sorted(
            by_email.get(normal_email(email) or "", {}).values(), key=lambda c: c.patient_id
        )
        rows.extend((lead_id, match) for match in grade(name, phone_cards, email_cards))
    conn.execute(
        "delete from integration.lead_patient_matches where lead_id = any(%s)",
        ([lead_id for lead_id, *_ in leads],),
    )
    if rows:
        # A lead matched at once by its arrival and by a re-match: the later one wins.
        conn.execute(
            """
            insert into integration.lead_patient_matches (lead_id, patient_id, grade, reason)
            select * from unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])
            on conflict (lead_id, patient_id) do update
               set grade = excluded.grade, reason = excluded.reason, matched_at = now()
            """,
            (
                [lead_id for lead_id, _ in rows],
                [m.patient_id for _, m in rows],
                [m.grade for _, m in rows],
                [m.reason for _, m in rows],
            ),
        )
    return len(rows)
