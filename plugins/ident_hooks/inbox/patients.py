"""The patient on each inbox row: the card, the visits, the family, freed time.

For the rows of one list (up to ``store.LIST_LIMIT``) a handful of queries, whatever the
number of rows: the matches of all their leads, the cards with their last and next visit,
the appointments and cards of their phones, their freed slots. Phones are compared by
``integration.phone_key`` (the last ten digits, indexed on appointments and card phones by
migration 0025), so a number typed any way in the clinic's system still matches.

Visits: the card's appointments (``appointments.patient_id``), plus those of its phones
that name no patient; a row without a card, by its phone alone. A completed appointment
makes the person *returning*; the next booked one is the first ``scheduled`` in the future.
This is shown to logged-in staff only and never logged.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg
from psycopg.rows import dict_row

GRADES = ("certain", "probable", "possible")  # best first

_MATCHES = """
select lead_id, patient_id, grade
  from integration.lead_patient_matches
 where lead_id = any(%s)
"""


def _last_and_next(key: str) -> str:
    """CTEs ``last`` and ``next`` over ``visits``: per ``key``, the last completed visit and
    the next booked one, each with its doctor (and the next one's branch)."""
    return f"""last as (
    select distinct on (v.{key}) v.{key}, v.starts_at, d.full_name as doctor_name
      from visits v left join clinic.doctors d on d.doctor_id = v.doctor_id
     where v.status = 'completed'
     order by v.{key}, v.starts_at desc
), next as (
    select distinct on (v.{key}) v.{key}, v.starts_at, d.full_name as doctor_name,
           coalesce(b.name, v.branch_id) as branch_name
      from visits v
      left join clinic.doctors d on d.doctor_id = v.doctor_id
      left join clinic.branches b on b.branch_id = v.branch_id
     where v.status = 'scheduled' and v.starts_at > now()
     order by v.{key}, v.starts_at
)"""


# Each card with its last completed and next booked visit. The appointments are fetched
# first by index (the cards' own, then those of their phones naming no patient), so the
# planner never walks the whole schedule looking for them.
_CARDS = f"""
with card_phones as materialized (
    select patient_id, integration.phone_key(phone) as phone_key
      from clinic.patient_phones
     where patient_id = any(%(cards)s)
), phone_appointments as materialized (
    select integration.phone_key(a.patient_phone) as phone_key, a.appointment_id,
           a.starts_at, a.status, a.doctor_id, a.branch_id
      from clinic.appointments a
     where integration.phone_key(a.patient_phone) = any(array(select phone_key from card_phones))
       and a.patient_phone is not null
       and a.patient_id is null
), visits as materialized (
    select a.patient_id as card_id, a.appointment_id, a.starts_at, a.status, a.doctor_id,
           a.branch_id
      from clinic.appointments a
     where a.patient_id = any(%(cards)s)
    union
    select p.patient_id, a.appointment_id, a.starts_at, a.status, a.doctor_id, a.branch_id
      from phone_appointments a
      join card_phones p on p.phone_key = a.phone_key
), {_last_and_next("card_id")}
select c.patient_id, c.full_name, c.birth_date,
       last.starts_at as last_visit_at, last.doctor_name as last_visit_doctor,
       next.starts_at as next_at, next.doctor_name as next_doctor,
       next.branch_name as next_branch
  from clinic.patients c
  left join last on last.card_id = c.patient_id
  left join next on next.card_id = c.patient_id
 where c.patient_id = any(%(cards)s)
"""

# The last completed and next booked visit of each phone, whoever's card it is.
_PHONE_VISITS = f"""
with visits as materialized (
    select integration.phone_key(a.patient_phone) as phone_key, a.starts_at, a.status,
           a.doctor_id, a.branch_id
      from clinic.appointments a
     where integration.phone_key(a.patient_phone) = any(%(keys)s)
       and a.patient_phone is not null
), {_last_and_next("phone_key")}
select k.phone_key,
       last.starts_at as last_visit_at, last.doctor_name as last_visit_doctor,
       next.starts_at as next_at, next.doctor_name as next_doctor,
       next.branch_name as next_branch
  from unnest(%(keys)s::text[]) as k (phone_key)
  left join last on last.phone_key = k.phone_key
  left join next on next.phone_key = k.phone_key
"""

# The cards that have each phone: a family sharing one number.
_PHONE_CARDS = """
select distinct integration.phone_key(p.phone) as phone_key, c.patient_id, c.full_name
  from clinic.patient_phones p
  join clinic.patients c on c.patient_id = p.patient_id
 where integration.phone_key(p.phone) = any(%s)
 order by 3, 2
"""

# The latest freed slot offered to each lead.
_FREED_SLOTS = """
select distinct on (f.lead_id) f.lead_id, f.starts_at, f.ends_at, f.flagged_at,
       coalesce(d.full_name, f.doctor_id) as doctor_name,
       coalesce(b.name, f.branch_id) as branch_name
  from integration.lead_freed_slots f
  left join clinic.doctors d on d.doctor_id = f.doctor_id
  left join clinic.branches b on b.branch_id = f.branch_id
 where f.lead_id = any(%s)
 order by f.lead_id, f.flagged_at desc, f.starts_at
"""


def phone_key(phone: str | None) -> str | None:
    """``integration.phone_key`` in Python: the last ten digits, or None when shorter."""
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[-10:] if len(digits) >= 10 else None


def _visits(row: dict[str, Any] | None) -> tuple[dict | None, dict | None]:
    if row is None:
        return None, None
    last = (
        {"starts_at": row["last_visit_at"], "doctor_name": row["last_visit_doctor"]}
        if row["last_visit_at"]
        else None
    )
    upcoming = (
        {
            "starts_at": row["next_at"],
            "doctor_name": row["next_doctor"],
            "branch_name": row["next_branch"],
        }
        if row["next_at"]
        else None
    )
    return last, upcoming


def _card(row: dict[str, Any], grade: str | None) -> dict[str, Any]:
    last, upcoming = _visits(row)
    return {
        "patient_id": row["patient_id"],
        "full_name": row["full_name"],
        "birth_date": row["birth_date"],
        "grade": grade,
        "returning": last is not None,
        "last_visit": last,
        "next_appointment": upcoming,
    }


def _visitor(state: str, card: dict[str, Any] | None, last: dict | None) -> str | None:
    """new or returning; None when several cards may be the person (each card says)."""
    if card is not None:
        return "returning" if card["returning"] else "new"
    if state == "none":  # no card at all: a completed visit by the phone still counts
        return "returning" if last else "new"
    return "new" if state == "new_patient" else None


def attach(
    conn: psycopg.Connection, rows: list[dict[str, Any]], groups: list[list[dict[str, Any]]]
) -> None:
    """Add ``patient`` and ``freed_slot`` to each row (``groups``: each row's leads)."""
    lead_ids = [lead["lead_id"] for group in groups for lead in group]
    with conn.cursor(row_factory=dict_row) as cursor:
        matches = cursor.execute(_MATCHES, (lead_ids,)).fetchall()
        slots = cursor.execute(_FREED_SLOTS, (lead_ids,)).fetchall()
        grade_of: dict[int, dict[str, str]] = defaultdict(dict)  # row index -> card -> grade
        row_of_lead = {lead["lead_id"]: i for i, group in enumerate(groups) for lead in group}
        for match in matches:
            grades = grade_of[row_of_lead[match["lead_id"]]]
            known = grades.get(match["patient_id"])
            if known is None or GRADES.index(match["grade"]) < GRADES.index(known):
                grades[match["patient_id"]] = match["grade"]
        choices = [
            max(
                (lead for lead in group if lead["has_choice"]),
                key=lambda lead: lead["chosen_at"],
                default=None,
            )
            for group in groups
        ]
        card_ids = {card for grades in grade_of.values() for card in grades}
        card_ids |= {c["chosen_patient_id"] for c in choices if c and c["chosen_patient_id"]}
        cards = {
            card["patient_id"]: card
            for card in cursor.execute(_CARDS, {"cards": sorted(card_ids)}).fetchall()
        }
        keys = sorted({key for row in rows if (key := phone_key(row["phone_e164"]))})
        phone_visits = {v["phone_key"]: v for v in cursor.execute(_PHONE_VISITS, {"keys": keys})}
        phone_cards: dict[str, list[dict[str, str]]] = defaultdict(list)
        for card in cursor.execute(_PHONE_CARDS, (keys,)):
            phone_cards[card["phone_key"]].append(
                {"patient_id": card["patient_id"], "full_name": card["full_name"]}
            )
    slot_of: dict[int, dict[str, Any]] = {}
    for slot in sorted(slots, key=lambda slot: slot["flagged_at"]):
        index = row_of_lead[slot["lead_id"]]
        slot_of[index] = {
            key: slot[key] for key in ("doctor_name", "branch_name", "starts_at", "ends_at")
        }

    for index, row in enumerate(rows):
        grades = grade_of.get(index, {})
        candidates = sorted(
            (_card(cards[card], grade) for card, grade in grades.items() if card in cards),
            key=lambda card: (GRADES.index(card["grade"]), card["full_name"]),
        )
        choice = choices[index]
        card = None
        if choice is not None:
            state = "chosen" if choice["chosen_patient_id"] else "new_patient"
            if choice["chosen_patient_id"] in cards:
                card = _card(
                    cards[choice["chosen_patient_id"]], grades.get(choice["chosen_patient_id"])
                )
        elif candidates:
            state = candidates[0]["grade"]
            best = [c for c in candidates if c["grade"] == state]
            if len(best) == 1 and state != "possible":
                card = best[0]
        else:
            state = "none"
        key = phone_key(row["phone_e164"])
        if card is not None:
            last, upcoming = card["last_visit"], card["next_appointment"]
        else:
            last, upcoming = _visits(phone_visits.get(key))
        family = phone_cards.get(key, []) if key else []
        row["patient"] = {
            "state": state,
            "chosen_by": choice["chosen_by"] if choice else None,
            "chosen_at": choice["chosen_at"] if choice else None,
            "card": card,
            "candidates": candidates,
            "visitor": _visitor(state, card, last),
            "last_visit": last,
            "next_appointment": upcoming,
            "family": family if len(family) > 1 else [],
        }
        row["freed_slot"] = slot_of.get(index)
