"""A deterministic demo clinic network: branches, doctors, shifts, appointments and leads.

The same seed, start date and ``now`` always give the same rows. The default is a network
of 3 branches (one on Yekaterinburg time) and 30 doctors, with appointments filling
about 60 % of the next 40 days; ``--doctors N --days D`` builds large networks for
benchmarks.

So that the reports have something to show on the first run, the 12 weeks before
(``--history-weeks``) get the same kind of shifts with visits (status ``completed``), and
leads arrive over those weeks from every configured source (``include/integrations.yaml``:
uis, flexbe, napopravku, 32top, site_main, tilda, site_form, uis_calls) with a mix of channels and a
handful of UTM campaigns (the channel rules: ``ident_hooks.reports.channels``). The front
desk took most of them within 5 minutes, some later, night leads the next morning, and
closed every one (migration 0004: ``taken_*``, ``closed_*``, spam and duplicates as
``spam``); only two leads of the last minutes are still in the inbox. A share of the leads
became visits: an appointment with the lead's phone (E.164 or as a front desk types it)
created minutes after the answer, which is how the reports count a conversion
(``ident_hooks.reports.facts``). Those appointments are slots of the generated schedule
given the lead's phone, so the schedule's shape does not change. The past has a random
stream of its own, so the schedule from the start day on is the same with or without it.

    python -m ident_dev.demo --doctors 30 --days 40        # load into ident_db
"""

from __future__ import annotations

import argparse
import math
import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

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
LENGTHS = {specialty: choice for specialty, _, choice in SPECIALTIES}
# What a visit costs the patient, by its length: a completed visit carries its amount.
PRICE_PER_30_MINUTES = 2400

# -- the past: leads, the front desk's answers and visits ------------------------------------
HISTORY_WEEKS = 12
CLINIC_ZONE = ZoneInfo("Europe/Moscow")  # include/integrations.yaml: clinic_timezone
LEADS_PER_DOCTOR_DAY = 0.45  # 30 doctors: about 13 leads a day
# The external ids of the demo's own leads; `load` replaces exactly these.
DEMO_LEAD_PREFIX = "demo-"
# integration.leads columns (migrations 0002 and 0004) in the order of DemoClinic.leads.
LEAD_COLUMNS = (
    "source",
    "external_id",
    "created_at",
    "loaded_at",
    "source_updated_at",
    "name",
    "phone_raw",
    "phone_e164",
    "email",
    "comment",
    "form_name",
    "doctor_id",
    "doctor_name_raw",
    "requested_start",
    "requested_end",
    "branch_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
    "referrer_host",
    "landing_url",
    "ym_client_id",
    "yclid",
    "gclid",
    "raw",
    "status",
    "ack_required",
    "acknowledged_at",
    "taken_by",
    "taken_at",
    "closed_by",
    "closed_at",
    "close_comment",
)
SITE_URL = "https://ulybka-clinic.ru"  # the clinic's website (source site_main)
LANDING_URL = "https://promo.ulybka-clinic.ru"  # its Flexbe landing pages (source flexbe)


@dataclass(frozen=True)
class Traffic:
    """One way patients reach the clinic: the source that records the lead and its tags."""

    weight: float
    source: str
    utm: tuple[str | None, str | None, str | None]  # utm_source, utm_medium, utm_campaign
    referrer: str | None
    page: str | None  # the landing page's path; None: no page (a call, an aggregator)
    converts: float  # the chance that a lead becomes a visit
    weeks_ago: tuple[int, int] = (0, HISTORY_WEEKS)  # when it runs: from .. to weeks ago


NO_TAGS = (None, None, None)
TRAFFIC = (
    Traffic(14, "site_main", ("yandex", "cpc", "implant_msk"), "https://yandex.ru/",
            "/implantatsiya/", 0.25),
    Traffic(6, "site_main", ("yandex", "cpc", "kids_dentistry"), "https://yandex.ru/",
            "/detskaya-stomatologiya/", 0.40, (5, HISTORY_WEEKS)),
    Traffic(5, "site_main", ("google", "cpc", "brand"), "https://www.google.com/", "/", 0.45),
    Traffic(12, "site_main", NO_TAGS, "https://yandex.ru/search/?text=стоматология+рядом", "/",
            0.35),
    Traffic(5, "site_main", NO_TAGS, "https://www.google.com/", "/vrachi/", 0.30),
    Traffic(6, "site_main", NO_TAGS, None, "/", 0.40),
    Traffic(5, "site_main", ("vk", "social", "checkup_promo"), "https://vk.com/ulybka_clinic",
            "/akcii/", 0.20, (0, 7)),
    Traffic(2, "site_main", ("telegram", "social", None), "https://t.me/ulybka_clinic",
            "/akcii/", 0.25),
    Traffic(3, "site_main", ("sendpulse", "email", "newsletter_hygiene"), None, "/gigiena/",
            0.35),
    Traffic(2, "site_main", NO_TAGS, "https://forum.littleone.ru/showthread.php?t=8812",
            "/detskaya-stomatologiya/", 0.30),
    Traffic(3, "site_main", ("prodoctorov", "referral", None),
            "https://prodoctorov.ru/moskva/lpu/48211-ulybka/", "/vrachi/", 0.50),
    Traffic(8, "flexbe", ("yandex", "cpc", "implant_all_on_4"), "https://yandex.ru/",
            "/all-on-4/", 0.15),
    Traffic(4, "flexbe", ("vk", "cpc", "braces_promo"), "https://vk.com/", "/breket-sistemy/",
            0.18, (0, 5)),
    Traffic(5, "uis", ("yandex", "cpc", "implant_msk"), "https://yandex.ru/", "/implantatsiya/",
            0.40),
    Traffic(4, "uis", NO_TAGS, "https://yandex.ru/search/?text=клиника+улыбка+телефон",
            "/kontakty/", 0.45),
    Traffic(5, "uis", NO_TAGS, None, None, 0.45),
    Traffic(8, "napopravku", NO_TAGS, None, None, 0.60),
    Traffic(4, "32top", NO_TAGS, None, None, 0.55),
    Traffic(6, "tilda", ("yandex", "cpc", "whitening_promo"), "https://yandex.ru/",
            "/otbelivanie/", 0.22),
    Traffic(5, "site_form", ("google", "cpc", "brand"), "https://www.google.com/", "/zapis/",
            0.40),
    Traffic(4, "uis_calls", NO_TAGS, None, None, 0.45),
)  # fmt: skip
CAMPAIGN_TERMS = {
    "implant_msk": ("имплантация зубов цена", "имплант под ключ", "установка импланта"),
    "kids_dentistry": ("детский стоматолог", "лечение зубов ребёнку"),
    "brand": ("клиника улыбка", "улыбка стоматология"),
    "implant_all_on_4": ("all on 4 цена", "зубы за один день"),
    "braces_promo": ("брекеты цена", "элайнеры"),
}
AGGREGATOR_LEAD_SOURCES = ("napopravku", "32top")
CALL_SOURCES = ("uis_calls",)
# The clinic's numbers callers dial: the ПроДокторов profile's and the sign's are in
# include/marketing_channels.yaml's `numbers`; the site's is not (its calls go by the rules).
CLINIC_NUMBERS = ("74951200001", "74951200002", "74951200003")
SPAM_SOURCES = ("site_main", "flexbe", "uis")
# Click ids (marketing-apis.md D): a visit to a page with Metrica's tag carries a ClientID
# (Tilda's only when its cookie sending is on); Direct's and Google Ads' auto-tagging adds
# yclid and gclid to most paid clicks' landing URLs. Tilda posts no landing URL.
CLIENT_ID_SHARE = {"site_main": 0.8, "flexbe": 0.75, "uis": 0.7, "site_form": 0.8, "tilda": 0.5}
AUTO_TAGGED_SHARE = {"yandex": ("yclid", 0.9), "google": ("gclid", 0.85)}
GCLID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SPAM_SHARE = 0.05
REPEAT_SHARE = 0.10  # leads from a patient who wrote or called in the last 30 days
MOBILE_CODES = ("903", "905", "906", "909", "910", "915", "916", "917", "919", "925", "926",
                "929", "962", "963", "964", "965", "967", "977", "985", "999")  # fmt: skip
# Leads per hour of the day (clinic time) and per weekday, relative.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 1, 2, 4, 7, 9, 9, 8, 7, 7, 7, 7, 7, 8, 8, 7, 5, 4, 2)
WEEKDAY_WEIGHTS = (1.15, 1.1, 1.05, 1.0, 0.95, 0.75, 0.6)
FRONT_DESK_HOURS = (8, 21)  # clinic time; a lead outside them waits for the morning
ADMINS = ("admin", "e.smirnova", "o.kuznetsova", "i.petrova", "a.volkova")
SITE_FORMS = ("Запись на приём", "Обратный звонок", "Вопрос врачу")
LANDING_FORMS = ("Бесплатная консультация", "Расчёт стоимости лечения")
COMMENTS = (
    "Болит зуб, нужна срочная консультация",
    "Интересует стоимость имплантации",
    "Перезвоните после 18:00, пожалуйста",
    "Хочу записать ребёнка на осмотр",
    "Можно ли в субботу?",
    "Нужна профессиональная чистка",
    "Выпала пломба",
)
CLOSED_AS_VISIT = ("Записали на приём", "Записан(а), напомним накануне")
CLOSED_OTHERWISE = (
    None,
    "Не дозвонились, отправили SMS",
    "Консультация по телефону, запишется позже",
    "Уточнили цену, думает",
    "Записан(а) в другую клинику",
)
SPAM_NAMES = ("тест", "Test", "ааа", None, "qwerty")
SPAM_PHONES = ("123", "0000000", None)
TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch  y  e yu ya".split(" "),
        strict=True,
    )
)
EMAIL_DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru")


@dataclass
class DemoClinic:
    branches: list[tuple] = field(default_factory=list)
    doctors: list[tuple] = field(default_factory=list)
    work_intervals: list[tuple] = field(default_factory=list)  # from the start day on
    appointments: list[tuple] = field(default_factory=list)
    past_work_intervals: list[tuple] = field(default_factory=list)  # the weeks before it
    past_appointments: list[tuple] = field(default_factory=list)
    leads: list[tuple] = field(default_factory=list)  # LEAD_COLUMNS, oldest first
    # Patient cards (see _patient_cards): (patient_id, full_name, birth_date, email, family_id)
    patients: list[tuple] = field(default_factory=list)
    patient_phones: list[tuple] = field(default_factory=list)  # (patient_id, phone as typed)
    appointment_patients: list[tuple] = field(default_factory=list)  # (appointment_id, patient)


@dataclass(frozen=True)
class _DoctorPlan:
    doctor_id: str
    full_name: str
    specialty: str
    home: tuple[str, ZoneInfo]
    second: tuple[str, ZoneInfo] | None  # the branch of the Saturdays, if any
    shift: tuple
    two_on_two: bool


def _phone(rng: random.Random) -> str:
    return f"+79{rng.randint(0, 99):02d}{rng.randint(0, 9_999_999):07d}"


def _schedule(
    plan: _DoctorPlan,
    offsets: range,
    start: date,
    rng: random.Random,
    now: datetime,
    clinic: DemoClinic,
    *,
    past: bool,
    serial: int,
) -> int:
    """Shifts and appointments of one doctor on ``start + offset`` days; returns the serial."""
    intervals = clinic.past_work_intervals if past else clinic.work_intervals
    appointments = clinic.past_appointments if past else clinic.appointments
    for offset in offsets:
        day = start + timedelta(days=offset)
        if plan.two_on_two:
            place = plan.home if (offset // 2) % 2 == 0 else None
        elif day.weekday() < 5:
            place = plan.home
        elif day.weekday() == 5 and plan.second is not None:
            place = plan.second
        else:
            place = None
        if place is None:
            continue
        branch_id, zone = place
        for begin, end in plan.shift:
            starts = datetime.combine(day, begin, zone)
            ends = datetime.combine(day, end, zone)
            intervals.append((plan.doctor_id, branch_id, starts, ends))
            cursor = starts
            while True:
                minutes = rng.choice(LENGTHS[plan.specialty])
                slot_end = cursor + timedelta(minutes=minutes)
                if slot_end > ends:
                    break
                if rng.random() < TARGET_FILL:
                    serial += 1
                    cancelled = rng.random() < CANCELLED_SHARE
                    booked = min(now, starts) - timedelta(minutes=rng.randint(30, 30 * 24 * 60))
                    appointments.append(
                        (
                            f"apt-past-{serial:07d}" if past else f"apt-{serial:07d}",
                            plan.doctor_id,
                            branch_id,
                            cursor,
                            slot_end,
                            "cancelled" if cancelled else ("completed" if past else "scheduled"),
                            _phone(rng),
                            booked,
                            PRICE_PER_30_MINUTES * minutes // 30
                            if past and not cancelled
                            else None,
                        )
                    )
                cursor = slot_end
    return serial


def generate(
    doctors: int = 30,
    days: int = 40,
    *,
    start: date | None = None,
    now: datetime | None = None,
    seed: int = DEFAULT_SEED,
    history_weeks: int = HISTORY_WEEKS,
) -> DemoClinic:
    """Build the network; ``start`` is the first schedule day (default: today).

    The ``history_weeks`` before ``start`` get shifts and visits too, and the same weeks
    before ``now`` get leads with the front desk's answers (see :func:`_history`).
    """
    if doctors < 1 or days < 1:
        raise ValueError("a demo clinic needs at least one doctor and one day")
    if history_weeks < 0:
        raise ValueError("history_weeks cannot be negative")
    rng = random.Random(seed)
    now = now or datetime.now(ZoneInfo("UTC"))
    start = start or now.astimezone(CLINIC_ZONE).date()
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
    plans = []
    serial = 0
    for index in range(doctors):
        doctor_id = f"doc-{index + 1:04d}"
        female = rng.random() < 0.55
        surname = rng.choice(SURNAMES) + ("а" if female else "")
        first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
        patronymic = rng.choice(FEMALE_PATRONYMICS if female else MALE_PATRONYMICS)
        specialty = rng.choice(specialty_pool)
        full_name = f"{surname} {first} {patronymic}"
        clinic.doctors.append((doctor_id, full_name, specialty, True))
        plan = _DoctorPlan(
            doctor_id,
            full_name,
            specialty,
            home=branch_zones[index % branch_count],
            # Every sixth doctor also sees patients in the next branch on Saturdays.
            second=branch_zones[(index + 1) % branch_count] if index % 6 == 5 else None,
            shift=SHIFTS[rng.randrange(len(SHIFTS))],
            two_on_two=rng.random() < 0.25,
        )
        plans.append(plan)
        serial = _schedule(plan, range(days), start, rng, now, clinic, past=False, serial=serial)

    if history_weeks:
        # A stream of its own: the schedule from `start` on is the same with or without it.
        past_rng = random.Random(f"{seed}:history")
        past_days = range(-7 * history_weeks, 0)
        serial = 0
        for plan in plans:
            serial = _schedule(
                plan, past_days, start, past_rng, now, clinic, past=True, serial=serial
            )
        _history(clinic, plans, past_rng, now, history_weeks)
    return clinic


@dataclass(frozen=True)
class _Patient:
    female: bool
    surname: str
    first: str
    patronymic: str
    phone: str  # E.164
    email: str


def _latin(text: str) -> str:
    return "".join(TRANSLIT.get(letter, letter) for letter in text.lower())


def _patient(rng: random.Random) -> _Patient:
    female = rng.random() < 0.6
    surname = rng.choice(SURNAMES) + ("а" if female else "")
    first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
    patronymic = rng.choice(FEMALE_PATRONYMICS if female else MALE_PATRONYMICS)
    phone = f"+7{rng.choice(MOBILE_CODES)}{rng.randrange(10_000_000):07d}"
    email = f"{_latin(first)[0]}.{_latin(surname)}{rng.randint(70, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    return _Patient(female, surname, first, patronymic, phone, email)


# Phones as people type them and as each source sends them ({a} is the code).
TYPED_PHONES = (
    "8 ({a}) {b}-{c}-{d}",
    "+7 ({a}) {b}-{c}-{d}",
    "+7{a}{b}{c}{d}",
    "8{a}{b}{c}{d}",
    "8 {a} {b} {c} {d}",
    "+7 {a} {b}-{c}-{d}",
)
SOURCE_PHONES = {
    "uis": "7{a}{b}{c}{d}",
    "napopravku": "+7{a}{b}{c}{d}",
    "32top": "+7 ({a}) {b}-{c}-{d}",
}


def _typed(phone: str, shape: str) -> str:
    return shape.format(a=phone[2:5], b=phone[5:8], c=phone[8:10], d=phone[10:12])


def _host(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.") or None


class _Visits:
    """Appointments (not cancelled) a lead can turn into, by doctor, by branch or any.

    Booking one rewrites its phone and creation time: the slot and the schedule's shape
    stay exactly as generated.
    """

    def __init__(self, clinic: DemoClinic, earliest: datetime) -> None:
        # Start times as POSIX seconds: comparing them is much cheaper than aware datetimes.
        after = earliest.timestamp()
        entries = [
            (row[3].timestamp(), row[0], rows, index)
            for rows in (clinic.past_appointments, clinic.appointments)
            for index, row in enumerate(rows)
            if row[5] != "cancelled"
        ]
        entries = sorted(entry for entry in entries if entry[0] >= after)
        self._pools: dict[tuple, tuple[list[float], list[tuple[list, int]]]] = {}
        for starts, _, rows, index in entries:
            for key in (("doctor", rows[index][1]), ("branch", rows[index][2]), ("any",)):
                pool = self._pools.setdefault(key, ([], []))
                pool[0].append(starts)
                pool[1].append((rows, index))
        self._booked: set[str] = set()

    def book(self, key: tuple, earliest: datetime, latest: datetime) -> tuple[list, int] | None:
        """The first free appointment of ``key`` starting in [earliest, latest], now taken."""
        starts, refs = self._pools.get(key, ([], []))
        first, last = earliest.timestamp(), latest.timestamp()
        for position in range(bisect_left(starts, first), len(starts)):
            if starts[position] > last:
                break
            rows, index = refs[position]
            if rows[index][0] not in self._booked:
                self._booked.add(rows[index][0])
                return rows, index
        return None


class _History:
    """The leads of the past weeks: who wrote or called, how fast the front desk answered,
    and which of them came to a visit."""

    def __init__(
        self, clinic: DemoClinic, plans: list, rng: random.Random, now: datetime, weeks: int
    ) -> None:
        self.clinic, self.plans, self.rng, self.now = clinic, plans, rng, now
        self.first_moment = now - timedelta(weeks=weeks)
        self.visits = _Visits(clinic, self.first_moment)
        self.branches = [branch[0] for branch in clinic.branches]
        self.branch_weights = [1 / (n + 1) for n in range(len(self.branches))]
        self.recent: deque[tuple[datetime, _Patient]] = deque()
        self.patients: list[_Patient] = []  # everyone who wrote or called, first time first
        self.serial = 0
        # Click ids draw from their own generator, so the rest of the history stays the same.
        self.click_rng = random.Random("demo-click-ids")

    def _patient_of(self, created: datetime) -> tuple[_Patient, bool]:
        while self.recent and self.recent[0][0] < created - timedelta(days=30):
            self.recent.popleft()
        if self.recent and self.rng.random() < REPEAT_SHARE:
            return self.rng.choice(self.recent)[1], True
        patient = _patient(self.rng)
        self.recent.append((created, patient))
        self.patients.append(patient)
        return patient, False

    def _name(self, patient: _Patient, source: str) -> str | None:
        """The name as the source sends it: a call rarely has one, a form what was typed."""
        rng, p = self.rng, patient
        if source == "uis":
            return None if rng.random() < 0.7 else p.first
        full = f"{p.surname} {p.first} {p.patronymic}"
        if source in AGGREGATOR_LEAD_SOURCES:
            return full if rng.random() < 0.7 else f"{p.surname} {p.first}"
        shapes = (
            p.first,
            f"{p.first} {p.surname}",
            f"{p.surname} {p.first}",
            p.first.lower(),
            full,
        )
        return rng.choices(shapes, weights=(40, 30, 15, 5, 10))[0]

    def _tags(self, traffic: Traffic) -> tuple[dict[str, str | None], str | None]:
        """The five UTM tags and the landing URL that carries them."""
        rng = self.rng
        utm_source, utm_medium, utm_campaign = traffic.utm
        terms = CAMPAIGN_TERMS.get(utm_campaign or "")
        tags = {
            "utm_source": utm_source,
            "utm_medium": utm_medium,
            "utm_campaign": utm_campaign,
            "utm_term": rng.choice(terms) if terms else None,
            "utm_content": f"ad_{rng.randint(1, 12)}" if utm_medium == "cpc" else None,
        }
        if traffic.page is None:
            return tags, None
        query = urlencode({key: value for key, value in tags.items() if value})
        base = LANDING_URL if traffic.source == "flexbe" else SITE_URL
        return tags, f"{base}{traffic.page}" + (f"?{query}" if query else "")

    def _click_ids(
        self, traffic: Traffic, created: datetime, landing_url: str | None
    ) -> tuple[dict[str, str | None], str | None]:
        """The lead's ClientID, yclid and gclid, and the landing URL carrying the click id."""
        rng = self.click_rng
        ids: dict[str, str | None] = dict.fromkeys(("ym_client_id", "yclid", "gclid"))
        if landing_url is None:  # a call or an aggregator's booking: no visit to the site
            return ids, landing_url
        if rng.random() < CLIENT_ID_SHARE.get(traffic.source, 0):
            first_visit = int(created.timestamp()) - rng.randint(0, 60 * 86400)
            ids["ym_client_id"] = f"{first_visit}{rng.randint(100_000_000, 999_999_999)}"
        utm_source, utm_medium, _ = traffic.utm
        key, share = AUTO_TAGGED_SHARE.get(utm_source or "", (None, 0))
        if key and utm_medium == "cpc" and traffic.source != "tilda" and rng.random() < share:
            if key == "yclid":
                ids[key] = str(rng.randint(10**16, 10**19 - 1))
            else:
                ids[key] = "Cj0KCQiA" + "".join(rng.choices(GCLID_CHARS, k=70)) + "_BwE"
            landing_url += ("&" if "?" in landing_url else "?") + urlencode({key: ids[key]})
        return ids, landing_url

    def _answered(self, created: datetime, loaded: datetime, fast_share: float) -> datetime:
        """When an admin took the lead: at once mostly, later some, the next morning at night."""
        rng = self.rng
        local = created.astimezone(CLINIC_ZONE)
        opens, closes = FRONT_DESK_HOURS
        if not opens <= local.hour < closes:
            morning = local.replace(hour=opens, minute=0, second=0, microsecond=0)
            if local.hour >= closes:
                morning += timedelta(days=1)
            taken = max(morning + timedelta(minutes=rng.uniform(0, 50)), loaded)
        else:
            chance = rng.random()
            if chance < fast_share:
                taken = loaded + timedelta(seconds=rng.uniform(10, 140))
            elif chance < fast_share + (1 - fast_share) * 0.75:
                taken = loaded + timedelta(minutes=rng.uniform(5, 45))
            else:
                taken = loaded + timedelta(hours=rng.uniform(1, 5))
        return min(taken, self.now - timedelta(seconds=30))

    def _visit(
        self, lead: dict, patient: _Patient, plan: _DoctorPlan | None, traffic: Traffic
    ) -> tuple | None:
        """Maybe book the lead into a slot a few days after the answer; the appointment."""
        rng = self.rng
        if rng.random() >= traffic.converts:
            return None
        taken = lead["taken_at"]
        earliest = max(lead["created_at"] + timedelta(hours=2), taken + timedelta(hours=1))
        earliest += timedelta(hours=rng.uniform(0, 96))
        if plan is not None:
            key: tuple = ("doctor", plan.doctor_id)
        else:
            key = ("branch", lead["branch_id"]) if lead["branch_id"] else ("any",)
        found = self.visits.book(key, earliest, earliest + timedelta(days=7))
        if found is None:
            return None
        rows, index = found
        booked = min(taken + timedelta(minutes=rng.uniform(1, 8)), self.now - timedelta(seconds=20))
        typed = rng.random() < 0.4
        phone = _typed(patient.phone, rng.choice(TYPED_PHONES)) if typed else patient.phone
        rows[index] = (*rows[index][:6], phone, booked, *rows[index][8:])
        return rows[index]

    def _handle(
        self,
        lead: dict,
        patient: _Patient,
        plan: _DoctorPlan | None,
        traffic: Traffic,
        fast_share: float,
        *,
        spam: bool,
        repeat: bool,
        wants_time: bool,
    ) -> None:
        """What the front desk did: taken, closed (spam, a visit or not) and why."""
        rng, now = self.rng, self.now
        taken = self._answered(lead["created_at"], lead["loaded_at"], fast_share)
        lead["taken_at"] = taken
        if spam:
            lead["closed_at"] = taken  # marked at once
            lead["close_comment"] = "Дубль заявки" if repeat else "Спам"
            return
        visit = self._visit(lead, patient, plan, traffic)
        if visit is not None:
            if wants_time:
                lead["requested_start"], lead["requested_end"] = visit[3], visit[4]
                lead["branch_id"] = visit[2]
            closed = visit[7] + timedelta(minutes=rng.uniform(0.5, 3))
            lead["close_comment"] = rng.choice(CLOSED_AS_VISIT)
        else:
            if wants_time and plan is not None:
                zone = plan.home[1]
                day = lead["created_at"].astimezone(zone).date()
                day += timedelta(days=rng.randint(1, 7))
                lead["requested_start"] = datetime.combine(day, time(9), zone) + timedelta(
                    minutes=rng.randrange(0, 9 * 60, 30)
                )
                lead["requested_end"] = lead["requested_start"] + timedelta(minutes=30)
            closed = taken + timedelta(minutes=rng.uniform(1, 15))
            lead["close_comment"] = rng.choice(CLOSED_OTHERWISE)
        lead["closed_at"] = min(closed, now - timedelta(seconds=1))

    def lead(
        self, created: datetime, traffic: Traffic, fast_share: float, state: str = "done"
    ) -> tuple:
        """One lead row (LEAD_COLUMNS); ``state`` ``new`` or ``in_progress`` leaves it open."""
        rng, source, now = self.rng, traffic.source, self.now
        aggregator = source in AGGREGATOR_LEAD_SOURCES
        handled = state == "done"
        self.serial += 1
        patient, repeat = self._patient_of(created)
        spam = handled and source in SPAM_SOURCES and rng.random() < SPAM_SHARE
        plan = None
        if not spam and (
            aggregator
            or (source == "site_main" and rng.random() < 0.25)
            or (source == "flexbe" and rng.random() < 0.1)
        ):
            plan = rng.choice(self.plans)
        # Aggregators always book a time; an open lead asking for one would hold it in the
        # published schedule, so the open ones ask for a doctor at most.
        wants_time = handled and plan is not None and (aggregator or rng.random() < 0.5)
        if plan is not None:
            branch = plan.home[0]
        elif source == "uis" or rng.random() < 0.85:
            branch = rng.choices(self.branches, weights=self.branch_weights)[0]
        else:
            branch = None
        if spam:
            name = rng.choice(SPAM_NAMES)
            phone_raw = patient.phone if repeat else rng.choice(SPAM_PHONES)
            phone_e164 = patient.phone if repeat else None
        else:
            name = self._name(patient, source)
            shape = SOURCE_PHONES.get(source) or rng.choice(TYPED_PHONES)
            phone_raw, phone_e164 = _typed(patient.phone, shape), patient.phone
        forms = {"site_main": SITE_FORMS, "flexbe": LANDING_FORMS}.get(source)
        comment_share = 0.15 if aggregator else 0.0 if source == "uis" else 0.4
        doctor_name_raw = None
        if plan is not None:
            # НаПоправку names the doctor by the clinic's own id, the others by name.
            doctor_name_raw = plan.doctor_id if source == "napopravku" else plan.full_name
        tags, landing_url = self._tags(traffic)
        ids, landing_url = self._click_ids(traffic, created, landing_url)
        if spam:
            ids = dict.fromkeys(ids)
        # Pulls run every 2 minutes; an aggregator's booking takes a little longer.
        lag = timedelta(seconds=rng.uniform(30, 150) if aggregator else rng.uniform(20, 140))
        loaded = min(created + lag, now - timedelta(seconds=5))
        acknowledged = None
        if source == "napopravku":  # acknowledged right after the pull
            acknowledged = loaded + timedelta(seconds=rng.uniform(1, 4))
        lead = {
            "source": source,
            "external_id": f"{DEMO_LEAD_PREFIX}{self.serial:06d}",
            "created_at": created,
            "loaded_at": loaded,
            "source_updated_at": loaded,
            "name": name,
            "phone_raw": phone_raw,
            "phone_e164": phone_e164,
            "email": patient.email
            if not spam and source != "uis" and rng.random() < 0.35
            else None,
            "comment": rng.choice(COMMENTS) if not spam and rng.random() < comment_share else None,
            "form_name": rng.choice(forms) if forms else None,
            "doctor_id": plan.doctor_id if plan is not None else None,
            "doctor_name_raw": doctor_name_raw,
            "requested_start": None,
            "requested_end": None,
            "branch_id": branch,
            **tags,
            "referrer": traffic.referrer,
            "referrer_host": _host(traffic.referrer),
            "landing_url": landing_url,
            **ids,
            "status": "spam" if spam else state,
            "ack_required": source == "napopravku",
            "acknowledged_at": acknowledged,
            "taken_at": None,
            "closed_at": None,
            "close_comment": None,
        }
        if state == "in_progress":
            lead["taken_at"] = min(
                loaded + timedelta(seconds=rng.uniform(60, 170)), now - timedelta(seconds=30)
            )
        elif handled:
            self._handle(
                lead,
                patient,
                plan,
                traffic,
                fast_share,
                spam=spam,
                repeat=repeat,
                wants_time=wants_time,
            )
        admin = rng.choice(ADMINS)
        lead["taken_by"] = admin if lead["taken_at"] else None
        lead["closed_by"] = admin if lead["closed_at"] else None
        sent = {
            "id": lead["external_id"],
            "created_at": created.isoformat(),
            "name": name,
            "phone": phone_raw,
            "email": lead["email"],
            "comment": lead["comment"],
            "form_name": lead["form_name"],
            "doctor": lead["doctor_name_raw"],
            "time_start": lead["requested_start"] and lead["requested_start"].isoformat(),
            "branch": lead["branch_id"],
            "page_url": landing_url,
            "referrer": traffic.referrer,
            **tags,
            **ids,
        }
        if source in CALL_SOURCES:
            # A call keeps its session and the number dialled, as UIS notifies them (bare
            # digits): include/marketing_channels.yaml's `numbers` say where each stands.
            sent["call_session_id"] = 400_000_000 + self.serial
            sent["virtual_phone_number"] = CLINIC_NUMBERS[self.serial % len(CLINIC_NUMBERS)]
        # The demo's own record, not any source's wire format: marked as such.
        lead["raw"] = {"demo": True, **{key: value for key, value in sent.items() if value}}
        return tuple(lead[column] for column in LEAD_COLUMNS)


def _history(
    clinic: DemoClinic, plans: list, rng: random.Random, now: datetime, weeks: int
) -> None:
    """``weeks`` weeks of leads up to ``now``, all closed but the two of the last minutes."""
    history = _History(clinic, plans, rng, now, weeks)
    today = now.astimezone(CLINIC_ZONE).date()
    # How well the front desk did each week (share answered at once in working hours).
    fast_share = [rng.uniform(0.65, 0.92) for _ in range(weeks + 1)]
    mean = LEADS_PER_DOCTOR_DAY * len(plans)
    newest_closed = now - timedelta(minutes=15)
    for back in range(7 * weeks, -1, -1):
        day = today - timedelta(days=back)
        offers = [t for t in TRAFFIC if t.weeks_ago[0] <= back // 7 <= t.weeks_ago[1]]
        growth = 0.85 + 0.25 * (1 - back / (7 * weeks))
        count = round(mean * WEEKDAY_WEIGHTS[day.weekday()] * growth * rng.uniform(0.8, 1.2))
        moments = sorted(
            datetime.combine(
                day,
                time(rng.choices(range(24), HOUR_WEIGHTS)[0], rng.randrange(60), rng.randrange(60)),
                CLINIC_ZONE,
            )
            for _ in range(count)
        )
        for created in moments:
            traffic = rng.choices(offers, [t.weight for t in offers])[0]
            if history.first_moment <= created <= newest_closed:
                clinic.leads.append(history.lead(created, traffic, fast_share[back // 7]))
    # The front desk's inbox right now: one lead being handled and one just in.
    for minutes, source, state in ((7, "uis", "in_progress"), (2, "site_main", "new")):
        traffic = next(t for t in TRAFFIC if t.source == source and t.utm[2] == "implant_msk")
        created = (now - timedelta(minutes=minutes)).astimezone(CLINIC_ZONE)
        clinic.leads.append(history.lead(created, traffic, fast_share[0], state))
    _patient_cards(clinic, history.patients)


# Patient cards: of the people who wrote or called, some are the clinic's patients already.
CARD_SHARES = (
    ("own", 0.45),  # their own card: the lead's name agrees (certain) or is absent (probable)
    ("family", 0.12),  # a mother and two children on one phone (possible; certain by name)
    ("spouse", 0.08),  # the phone is on the spouse's card only (probable, another name)
    ("new", 0.35),  # no card: a new patient
)
SECOND_PHONE_SHARE = 0.2
DEMO_PATIENT_PREFIX = "demo-patient-"  # the demo's own cards: a reload replaces them


def _patient_cards(clinic: DemoClinic, people: list[_Patient]) -> None:
    """Cards for some of the people behind the leads, with their phones typed the way the
    clinic's system keeps them, and the completed visits on their phones named by patient.
    Drawn from a generator of their own, so the rest of the demo stays the same."""
    from ident_hooks.leads.normalise import normalise_phone

    rng = random.Random("demo-patients")
    kinds, weights = zip(*CARD_SHARES, strict=True)
    by_phone: dict[str, str] = {}

    def card(person: _Patient, first: str, *, female: bool, years: int, family: str | None):
        patient_id = f"{DEMO_PATIENT_PREFIX}{len(clinic.patients) + 1:05d}"
        base = person.surname[:-1] if person.female else person.surname  # SURNAMES + «а»
        surname = base + ("а" if female else "")
        born = date(2026 - years, rng.randint(1, 12), rng.randint(1, 28))
        patronymic = rng.choice(FEMALE_PATRONYMICS if female else MALE_PATRONYMICS)
        email = person.email if first == person.first else None
        clinic.patients.append((patient_id, f"{surname} {first} {patronymic}", born, email, family))
        return patient_id

    for person in people:
        kind = rng.choices(kinds, weights)[0]
        if kind == "new":
            continue
        holders = []
        if kind == "own":
            holders.append(
                card(
                    person,
                    person.first,
                    female=person.female,
                    years=rng.randint(20, 70),
                    family=None,
                )
            )
        elif kind == "spouse":
            female = not person.female
            first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
            holders.append(
                card(person, first, female=female, years=rng.randint(25, 70), family=None)
            )
        else:
            family = f"demo-family-{len(clinic.patients) + 1:05d}"
            holders.append(
                card(
                    person,
                    person.first,
                    female=person.female,
                    years=rng.randint(30, 50),
                    family=family,
                )
            )
            for _ in range(2):
                female = rng.random() < 0.5
                first = rng.choice(FEMALE_FIRST if female else MALE_FIRST)
                holders.append(
                    card(person, first, female=female, years=rng.randint(3, 17), family=family)
                )
        for patient_id in holders:
            clinic.patient_phones.append(
                (patient_id, _typed(person.phone, rng.choice(TYPED_PHONES)))
            )
        by_phone[person.phone] = holders[0]
        if rng.random() < SECOND_PHONE_SHARE:
            clinic.patient_phones.append((holders[0], _phone(rng)))
    for row in clinic.past_appointments:
        patient_id = by_phone.get(normalise_phone(row[6]) or "")
        if patient_id is not None and row[5] == "completed":
            clinic.appointment_patients.append((row[0], patient_id))


def _copy(conn: psycopg.Connection, table: str, columns: str, rows: list[tuple]) -> None:
    with conn.cursor().copy(f"copy {table} ({columns}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def load(conn: psycopg.Connection, clinic: DemoClinic, *, replace: bool = False) -> bool:
    """Write the network and its history in one transaction; without ``replace`` a
    non-empty DB is kept.

    Leads go into ``integration.leads`` as ingestion stores them (the reports and the
    inbox read them like any other); the demo's own earlier leads (ids ``demo-…``) are
    replaced, leads pulled from the sources are kept. Returns whether anything was written.
    """
    with conn.transaction():
        if not replace:
            if conn.execute("select exists (select 1 from clinic.doctors)").fetchone()[0]:
                return False
        else:
            conn.execute(
                "truncate clinic.appointments, clinic.work_intervals, clinic.export_rules,"
                " clinic.doctors, clinic.branches, clinic.patients cascade"
            )
        conn.execute(
            "delete from integration.leads where starts_with(external_id, %s)",
            (DEMO_LEAD_PREFIX,),
        )
        _copy(conn, "clinic.branches", "branch_id, name, timezone, address", clinic.branches)
        _copy(conn, "clinic.doctors", "doctor_id, full_name, specialty, is_active", clinic.doctors)
        _copy(
            conn,
            "clinic.work_intervals",
            "doctor_id, branch_id, starts_at, ends_at",
            clinic.past_work_intervals + clinic.work_intervals,
        )
        _copy(
            conn,
            "clinic.appointments",
            "appointment_id, doctor_id, branch_id, starts_at, ends_at, status,"
            " patient_phone, created_at, amount",
            clinic.past_appointments + clinic.appointments,
        )
        raw = LEAD_COLUMNS.index("raw")
        _copy(
            conn,
            "integration.leads",
            ", ".join(LEAD_COLUMNS),
            [(*row[:raw], Jsonb(row[raw]), *row[raw + 1 :]) for row in clinic.leads],
        )
        _load_patients(conn, clinic)
    return True


def _load_patients(conn: psycopg.Connection, clinic: DemoClinic) -> None:
    """The cards, the visits they made, and the demo's leads matched to them (the leads are
    copied in, not stored through ingestion, so they are matched here)."""
    from ident_hooks.patients.matching import match_leads
    from ident_hooks.patients.rematch import refresh_phone_index

    conn.execute(
        "delete from clinic.patients where starts_with(patient_id, %s)", (DEMO_PATIENT_PREFIX,)
    )
    columns = "patient_id, full_name, birth_date, email, family_id"
    _copy(conn, "clinic.patients", columns, clinic.patients)
    _copy(conn, "clinic.patient_phones", "patient_id, phone", clinic.patient_phones)
    conn.execute(
        "update clinic.appointments a set patient_id = v.patient_id"
        " from unnest(%s::text[], %s::text[]) v (appointment_id, patient_id)"
        " where a.appointment_id = v.appointment_id",
        ([a for a, _ in clinic.appointment_patients], [p for _, p in clinic.appointment_patients]),
    )
    refresh_phone_index(conn, None)
    demo_leads = conn.execute(
        "select lead_id from integration.leads where starts_with(external_id, %s)",
        (DEMO_LEAD_PREFIX,),
    )
    match_leads(conn, [lead_id for (lead_id,) in demo_leads])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Load the demo clinic into ident_db.")
    parser.add_argument("--doctors", type=int, default=30)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument(
        "--history-weeks",
        type=int,
        default=HISTORY_WEEKS,
        help="weeks of past shifts, visits and leads (0: none)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--replace", action="store_true", help="replace existing clinic data")
    args = parser.parse_args(argv)

    from ident_hooks.db import connect, prepare_database

    clinic = generate(args.doctors, args.days, seed=args.seed, history_weeks=args.history_weeks)
    with connect() as conn:
        prepare_database(conn)
        written = load(conn, clinic, replace=args.replace)
    if written:
        print(
            f"loaded {len(clinic.branches)} branches, {len(clinic.doctors)} doctors, "
            f"{len(clinic.work_intervals) + len(clinic.past_work_intervals)} work intervals, "
            f"{len(clinic.appointments) + len(clinic.past_appointments)} appointments, "
            f"{len(clinic.leads)} leads"
        )
    else:
        print("clinic data already present; kept it (use --replace to overwrite)")


if __name__ == "__main__":
    main()
