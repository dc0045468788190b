"""Keeping matches current as the clinic's sync changes cards.

Statement-level triggers (migration 0024) note every changed card in
``integration.patient_changes``. A re-match takes the noted cards, rebuilds their rows of the
E.164 phone index (``integration.patient_phone_index``) and matches again the leads they may
touch: open leads and leads of the last ``RECENT_DAYS`` days whose phone is now a phone of a
changed card, whose e-mail is a changed card's e-mail, or that were matched to a changed card
before. A truncate of the cards (noted as a null patient) rebuilds the whole index and
re-matches every open and recent lead; so does ``full=True``.

All of it is one transaction: the queue's rows are deleted in it, so a failed run leaves
them for the next. It holds an advisory lock that matching on arrival takes shared: a lead
stored meanwhile waits for the new index, or the re-match waits for the lead. Run it with
the ``match_patients`` DAG or ``python -m ident_hooks.patients.rematch [--full]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import psycopg

from ident_hooks.leads.normalise import normalise_phone
from ident_hooks.leads.store import copy_rows
from ident_hooks.patients.matching import MATCHING_LOCK_KEY, match_leads

RECENT_DAYS = 30
_OPEN_OR_RECENT = "(l.status in ('new', 'in_progress') or l.created_at >= %(since)s)"


@dataclass(frozen=True)
class RematchSummary:
    full: bool
    cards: int | None  # None: every card
    phones_indexed: int
    leads: int
    matches: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def refresh_phone_index(conn: psycopg.Connection, patient_ids: Collection[str] | None) -> int:
    """Rebuild the index rows of these cards (None: of every card); returns rows written.
    A phone that is not a number is left out: it can match nothing."""
    if patient_ids is None:
        conn.execute("truncate integration.patient_phone_index")
        phones = conn.execute("select patient_id, phone from clinic.patient_phones")
    else:
        ids = list(patient_ids)
        conn.execute(
            "delete from integration.patient_phone_index where patient_id = any(%s)", (ids,)
        )
        phones = conn.execute(
            "select patient_id, phone from clinic.patient_phones where patient_id = any(%s)",
            (ids,),
        )
    rows = {
        (e164, patient_id)
        for patient_id, phone in phones
        if (e164 := normalise_phone(phone)) is not None
    }
    copy_rows(conn, "integration.patient_phone_index", ("phone_e164", "patient_id"), list(rows))
    return len(rows)


def rematch(
    conn: psycopg.Connection, *, now: datetime, full: bool = False, recent_days: int = RECENT_DAYS
) -> RematchSummary:
    """Take the noted card changes, refresh their index rows, re-match the leads they touch,
    and commit."""
    started = time.perf_counter()
    conn.execute("select pg_advisory_xact_lock(%s)", (MATCHING_LOCK_KEY,))
    noted = [
        row[0]
        for row in conn.execute("delete from integration.patient_changes returning patient_id")
    ]
    full = full or None in noted
    changed = None if full else {patient_id for patient_id in noted if patient_id is not None}
    since = now - timedelta(days=recent_days)
    indexed = refresh_phone_index(conn, changed)
    if full:
        leads = conn.execute(
            f"select l.lead_id from integration.leads l where {_OPEN_OR_RECENT}", {"since": since}
        )
    elif changed:
        leads = conn.execute(
            f"""
            select l.lead_id from integration.leads l
             where {_OPEN_OR_RECENT}
               and (l.phone_e164 in (select phone_e164 from integration.patient_phone_index
                                      where patient_id = any(%(ids)s))
                    or l.lead_id in (select lead_id from integration.lead_patient_matches
                                      where patient_id = any(%(ids)s))
                    or lower(btrim(l.email)) in (
                        select lower(btrim(email)) from clinic.patients
                         where patient_id = any(%(ids)s)
                           and email is not null and btrim(email) <> ''))
            """,
            {"since": since, "ids": list(changed)},
        )
    else:
        leads = []
    lead_ids = [lead_id for (lead_id,) in leads]
    matches = match_leads(conn, lead_ids)
    conn.commit()
    return RematchSummary(
        full=full,
        cards=None if changed is None else len(changed),
        phones_indexed=indexed,
        leads=len(lead_ids),
        matches=matches,
        seconds=round(time.perf_counter() - started, 3),
    )


def main() -> None:
    from ident_hooks.db import connect

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="re-index every card, re-match all")
    args = parser.parse_args()
    with connect() as conn:
        print(rematch(conn, now=datetime.now().astimezone(), full=args.full))


if __name__ == "__main__":
    main()
