"""Matching leads to patient cards: the time it adds to storing leads, and a re-match.

    scripts/bootstrap.sh && python bench/patient_matching.py --cards 50000 --phones 70000

Against ``--cards`` cards with ``--phones`` phones (typed several ways, a quarter of the
numbers shared by a family of two or three), stores ``--batches`` batches of 1,000 leads
(half of them on a card's phone) and prints the time matching adds per batch (the same
leads matched again alone, as ``store_leads`` matches them), then changes 1,000 cards (a
new phone, a new name) and times the re-match that follows.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime

from _common import bench_database

FIRST = ["Мария", "Анна", "Ольга", "Иван", "Пётр", "Алёна", "Сергей", "Нина", "Олег", "Артём"]
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков"]
TYPED = ["+7{}", "8{}", "8 ({0[0]}{0[1]}{0[2]}) {0[3]}{0[4]}{0[5]}-{0[6]}{0[7]}-{0[8]}{0[9]}"]


def _number(rng: random.Random) -> str:
    return "9" + "".join(rng.choice("0123456789") for _ in range(9))


def _typed(rng: random.Random, national: str) -> str:
    return rng.choice(TYPED).format(national)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=50_000)
    parser.add_argument("--phones", type=int, default=70_000)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()

    import psycopg

    from ident_hooks.leads.normalise import Lead
    from ident_hooks.leads.store import store_leads
    from ident_hooks.patients.matching import match_leads
    from ident_hooks.patients.rematch import rematch

    rng = random.Random(20)
    url, drop = bench_database()
    try:
        conn = psycopg.connect(url)
        cards, phones, numbers = [], set(), []
        for i in range(args.cards):
            name = f"{rng.choice(LAST)} {rng.choice(FIRST)} Петрович"
            cards.append((f"p{i}", name))
            national = numbers[-1] if numbers and rng.random() < 0.25 else _number(rng)
            numbers.append(national)
            phones.add((f"p{i}", _typed(rng, national)))
        while len(phones) < args.phones:  # second phones
            phones.add((f"p{rng.randrange(args.cards)}", _typed(rng, _number(rng))))
        with conn.cursor() as cursor:
            with cursor.copy("copy clinic.patients (patient_id, full_name) from stdin") as copy:
                for row in cards:
                    copy.write_row(row)
            with cursor.copy("copy clinic.patient_phones (patient_id, phone) from stdin") as c:
                for row in phones:
                    c.write_row(row)
        conn.commit()
        indexed = rematch(conn, now=datetime.now(UTC), full=True)

        matched_share, store_seconds = [], []
        for batch in range(args.batches):
            leads = []
            for i in range(1000):
                national = rng.choice(numbers) if i % 2 else _number(rng)
                leads.append(
                    Lead(
                        source="site_main",
                        external_id=f"b{batch}-{i}",
                        created_at=datetime.now(UTC),
                        name=rng.choice(FIRST),
                        phone_raw="+7" + national,
                        phone_e164="+7" + national,
                        raw={},
                    )
                )
            started = time.perf_counter()
            store_leads(conn, leads)
            conn.commit()
            store_seconds.append(time.perf_counter() - started)
            # The same leads matched again alone: the share matching takes of the store.
            lead_ids = [
                lead_id
                for (lead_id,) in conn.execute(
                    "select lead_id from integration.leads where external_id like %s",
                    (f"b{batch}-%",),
                )
            ]
            started = time.perf_counter()
            match_leads(conn, lead_ids)
            conn.commit()
            matched_share.append(time.perf_counter() - started)

        changed = rng.sample(range(args.cards), 1000)
        conn.execute(
            "update clinic.patients set full_name = full_name || ' (изм.)'"
            " where patient_id = any(%s)",
            ([f"p{i}" for i in changed],),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into clinic.patient_phones (patient_id, phone) values (%s, %s)"
                " on conflict do nothing",
                [(f"p{i}", "+7" + rng.choice(numbers)) for i in changed],
            )
        conn.commit()
        after_changes = rematch(conn, now=datetime.now(UTC))
        grades = dict(
            conn.execute(
                "select grade, count(*) from integration.lead_patient_matches group by grade"
            ).fetchall()
        )
        print(
            json.dumps(
                {
                    "cards": args.cards,
                    "phones": len(phones),
                    "full_index_build_seconds": indexed.seconds,
                    "phones_indexed": indexed.phones_indexed,
                    "store_1000_leads_seconds_median": round(statistics.median(store_seconds), 3),
                    "matching_share_seconds_median": round(statistics.median(matched_share), 3),
                    "rematch_after_1000_card_changes": after_changes.as_dict(),
                    "matches_by_grade": grades,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        conn.close()
    finally:
        drop()


if __name__ == "__main__":
    main()
