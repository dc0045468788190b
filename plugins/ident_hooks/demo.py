"""A deterministic demo clinic network: branches, doctors, shifts and appointments.

The same seed and start date always give the same rows. The default is a network
of 3 branches (one on Yekaterinburg time) and 30 doctors, with appointments filling
about 60 % of the next 40 days; ``--doctors N --days D`` builds large networks for
benchmarks.

    python -m ident_hooks.demo --doctors 30 --days 40        # load into ident_db
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

CITIES = [
    ("msk", "Москва", "Europe/Moscow", "ул. Арбат, 24"),
    ("spb", "Санкт-Петербург", "Europe/Moscow", "Невский пр., 88"),
    ("ekb", "Екатеринбург", "Asia/Yekaterinburg", "ул. Малышева, 51"),
    ("nsk", "Новосибирск", "Asia/Novosibirsk", "Красный пр., 17"),
    ("kzn", "Казань", "Europe/Moscow", "ул. Баумана, 44"),
    ("smr", "Самара", "Europe/Samara", "ул. Куйбышева, 92"),
]
MALE_FIRST = [
    "Александр",
    "Дмитрий",
    "Сергей",
    "Андрей",
    "Алексей",
    "Михаил",
    "Игорь",
    "Геннадий",
    "Павел",
    "Артём",
    "Николай",
    "Владимир",
    "Константин",
    "Олег",
]
FEMALE_FIRST = [
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Анна",
    "Мария",
    "Светлана",
    "Юлия",
    "Екатерина",
    "Марина",
    "Ксения",
    "Дарья",
    "Людмила",
]
SURNAMES = [
    "Иванов",
    "Петров",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Соколов",
    "Лебедев",
    "Козлов",
    "Новиков",
    "Морозов",
    "Волков",
    "Алексеев",
    "Фёдоров",
    "Орлов",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Павлов",
    "Семёнов",
    "Голубев",
    "Виноградов",
    "Богданов",
    "Воробьёв",
    "Михайлов",
    "Беляев",
    "Тарасов",
    "Белов",
    "Комаров",
    "Киселёв",
    "Макаров",
    "Андреев",
    "Ковалёв",
    "Ильин",
    "Гусев",
    "Титов",
]
MALE_PATRONYMICS = [
    "Александрович",
    "Дмитриевич",
    "Сергеевич",
    "Андреевич",
    "Игоревич",
    "Николаевич",
    "Владимирович",
    "Олегович",
    "Павлович",
    "Михайлович",
]
FEMALE_PATRONYMICS = [
    "Александровна",
    "Дмитриевна",
    "Сергеевна",
    "Андреевна",
    "Игоревна",
    "Николаевна",
    "Владимировна",
    "Олеговна",
    "Павловна",
    "Михайловна",
]
# (specialty, weight, usual appointment lengths in minutes)
SPECIALTIES = [
    ("Стоматолог-терапевт", 5, (30, 60)),
    ("Стоматолог-хирург", 3, (30, 60)),
    ("Стоматолог-ортопед", 2, (60,)),
    ("Ортодонт", 2, (30, 60)),
    ("Терапевт", 3, (30,)),
    ("Гинеколог", 2, (30,)),
    ("Уролог", 1, (30,)),
    ("Кардиолог", 1, (30, 60)),
    ("Невролог", 2, (30,)),
    ("Оториноларинголог", 2, (20, 30)),
    ("Офтальмолог", 1, (20, 30)),
    ("Дерматолог", 1, (30,)),
    ("Эндокринолог", 1, (30,)),
    ("Педиатр", 2, (20, 30)),
]
# Shifts in branch-local time: the working stretches of one day (a gap is a break).
SHIFTS = [
    ((time(9), time(13)), (time(14), time(18))),
    ((time(8), time(14)),),
    ((time(14), time(17)), (time(17, 30), time(21))),
    ((time(10), time(14)), (time(15), time(19))),
]
DEFAULT_SEED = 20261126
TARGET_FILL = 0.66  # of steps booked; cancellations and shift ends bring it to ~60 %
CANCELLED_SHARE = 0.08


@dataclass
class DemoClinic:
    branches: list[tuple] = field(default_factory=list)
    doctors: list[tuple] = field(default_factory=list)
    work_intervals: list[tuple] = field(default_factory=list)
    appointments: list[tuple] = field(default_factory=list)


def _phone(rng: random.Random) -> str:
    return f"+79{rng.randint(0, 99):02d}{rng.randint(0, 9_999_999):07d}"


def generate(
    doctors: int = 30,
    days: int = 40,
    *,
    start: date | None = None,
    now: datetime | None = None,
    seed: int = DEFAULT_SEED,
) -> DemoClinic:
    """Build the network; ``start`` is the first schedule day (default: today)."""
    if doctors < 1 or days < 1:
        raise ValueError("a demo clinic needs at least one doctor and one day")
    rng = random.Random(seed)
    now = now or datetime.now(ZoneInfo("UTC"))
    start = start or now.astimezone(ZoneInfo("Europe/Moscow")).date()
    clinic = DemoClinic()

    branch_count = max(3, math.ceil(doctors / 30))
    branch_zones = []
    for index in range(branch_count):
        code, city, zone, street = CITIES[index % len(CITIES)]
        number = index // len(CITIES) + 1
        branch_id = f"{code}-{number}"
        clinic.branches.append(
            (branch_id, f"Клиника «Улыбка» — {city}, филиал {number}", zone, f"{city}, {street}")
        )
        branch_zones.append((branch_id, ZoneInfo(zone)))

    specialty_pool = [s for s, weight, _ in SPECIALTIES for _ in range(weight)]
    lengths = {s: choice for s, _, choice in SPECIALTIES}
    appointment_serial = 0
    for index in range(doctors):
        doctor_id = f"doc-{index + 1:04d}"
        female = rng.random() < 0.55
        surname = rng.choice(SURNAMES) + ("а" if female else "")
        first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
        patronymic = rng.choice(FEMALE_PATRONYMICS if female else MALE_PATRONYMICS)
        specialty = rng.choice(specialty_pool)
        clinic.doctors.append((doctor_id, f"{surname} {first} {patronymic}", specialty, True))

        home = branch_zones[index % branch_count]
        # Every sixth doctor also sees patients in the next branch on Saturdays.
        second = branch_zones[(index + 1) % branch_count] if index % 6 == 5 else None
        shift = SHIFTS[rng.randrange(len(SHIFTS))]
        two_on_two = rng.random() < 0.25
        for offset in range(days):
            day = start + timedelta(days=offset)
            if two_on_two:
                place = home if (offset // 2) % 2 == 0 else None
            elif day.weekday() < 5:
                place = home
            elif day.weekday() == 5 and second is not None:
                place = second
            else:
                place = None
            if place is None:
                continue
            branch_id, zone = place
            for begin, end in shift:
                starts = datetime.combine(day, begin, zone)
                ends = datetime.combine(day, end, zone)
                clinic.work_intervals.append((doctor_id, branch_id, starts, ends))
                cursor = starts
                while True:
                    minutes = rng.choice(lengths[specialty])
                    slot_end = cursor + timedelta(minutes=minutes)
                    if slot_end > ends:
                        break
                    if rng.random() < TARGET_FILL:
                        appointment_serial += 1
                        cancelled = rng.random() < CANCELLED_SHARE
                        booked = min(now, starts) - timedelta(minutes=rng.randint(30, 30 * 24 * 60))
                        clinic.appointments.append(
                            (
                                f"apt-{appointment_serial:07d}",
                                doctor_id,
                                branch_id,
                                cursor,
                                slot_end,
                                "cancelled" if cancelled else "scheduled",
                                _phone(rng),
                                booked,
                            )
                        )
                    cursor = slot_end
    return clinic


def _copy(conn: psycopg.Connection, table: str, columns: str, rows: list[tuple]) -> None:
    with conn.cursor().copy(f"copy {table} ({columns}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def load(conn: psycopg.Connection, clinic: DemoClinic, *, replace: bool = False) -> bool:
    """Write the network in one transaction; without ``replace`` a non-empty DB is kept.

    Returns whether anything was written.
    """
    with conn.transaction():
        if not replace:
            if conn.execute("select exists (select 1 from clinic.doctors)").fetchone()[0]:
                return False
        else:
            conn.execute(
                "truncate clinic.appointments, clinic.work_intervals, clinic.export_rules,"
                " clinic.doctors, clinic.branches cascade"
            )
        _copy(conn, "clinic.branches", "branch_id, name, timezone, address", clinic.branches)
        _copy(conn, "clinic.doctors", "doctor_id, full_name, specialty, is_active", clinic.doctors)
        _copy(
            conn,
            "clinic.work_intervals",
            "doctor_id, branch_id, starts_at, ends_at",
            clinic.work_intervals,
        )
        _copy(
            conn,
            "clinic.appointments",
            "appointment_id, doctor_id, branch_id, starts_at, ends_at, status,"
            " patient_phone, created_at",
            clinic.appointments,
        )
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Load the demo clinic into ident_db.")
    parser.add_argument("--doctors", type=int, default=30)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--replace", action="store_true", help="replace existing clinic data")
    args = parser.parse_args(argv)

    from ident_hooks.db import apply_migrations, connect

    clinic = generate(args.doctors, args.days, seed=args.seed)
    with connect() as conn:
        apply_migrations(conn)
        written = load(conn, clinic, replace=args.replace)
    if written:
        print(
            f"loaded {len(clinic.branches)} branches, {len(clinic.doctors)} doctors, "
            f"{len(clinic.work_intervals)} work intervals, "
            f"{len(clinic.appointments)} appointments"
        )
    else:
        print("clinic data already present; kept it (use --replace to overwrite)")


if __name__ == "__main__":
    main()
