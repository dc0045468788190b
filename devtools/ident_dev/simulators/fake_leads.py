"""The lead generator and lead-serving server that every lead-source simulator shares.

``FakeLeadFactory`` invents realistic Russian leads from a seed: names, phones in the
formats people type, e-mails, UTM tags, referrers (yandex.ru, google.com, vk.com, ok.ru,
t.me, prodoctorov.ru, napopravku.ru or none) and, for some, a doctor and a time.
``LeadServingSimulator`` keeps records with the moment they became visible; each source's
simulator renders a ``FakeLead`` in its own wire format.

Click ids as the services make them (marketing-apis.md D): most visitors carry Metrica's
ClientID (the ``_ym_uid`` cookie: the first visit's Unix seconds and nine random digits);
Yandex Direct adds ``yclid`` and Google Ads ``gclid`` to the landing URL of most paid clicks
(auto-tagging is on by default, not everywhere). Pushed sources have no simulator server:
``tilda_form`` and ``webhook_body`` render what Tilda and a clinic's site post, for tests to
send to the intake service — Tilda adds ``COOKIES`` only when the clinic switched cookie
sending on, and ``_ym_uid`` is among them only where Metrica runs on the page.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ident_dev.simulators.base import SimulatorServer

MOSCOW = ZoneInfo("Europe/Moscow")
Clock = Callable[[], datetime]

SURNAMES = [
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
]  # fmt: skip
MALE_NAMES = ["Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья"]
FEMALE_NAMES = ["Анна", "Мария", "Елена", "Ольга", "Наталья", "Алёна", "Ксения", "Дарья"]
MALE_PATRONYMICS = ["Александрович", "Дмитриевич", "Сергеевич", "Андреевич", "Игоревич"]
FEMALE_PATRONYMICS = ["Александровна", "Дмитриевна", "Сергеевна", "Андреевна", "Игоревна"]
EMAIL_DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru"]
COMMENTS = [
    "Болит зуб, нужна срочная консультация",
    "Интересует стоимость имплантации",
    "Перезвоните после 18:00, пожалуйста",
    "Хочу записать ребёнка на осмотр",
    "Нужна справка для бассейна",
    "Есть ли приём в субботу?",
    None,
]
FORM_NAMES = ["Запись на приём", "Обратный звонок", "Консультация имплантолога", "Расчёт цены"]
PHONE_FORMATS = [
    "8 ({a}) {b}-{c}-{d}",
    "+7 ({a}) {b}-{c}-{d}",
    "+7{a}{b}{c}{d}",
    "8{a}{b}{c}{d}",
    "{a} {b} {c} {d}",
    "7({a}){b}{c}{d}",
    "+7 {a} {b} {c} {d}",
    "8-{a}-{b}-{c}-{d}",
]
# (referrer, utm tags or None); None referrer = direct visit
CHANNELS: list[tuple[str | None, dict[str, str] | None]] = [
    ("https://yandex.ru/search/?text=стоматология+рядом", None),
    (
        "https://yandex.ru/",
        {
            "utm_source": "yandex",
            "utm_medium": "cpc",
            "utm_campaign": "implant_msk",
            "utm_term": "имплантация зубов",
            "utm_content": "ad_12",
        },
    ),
    ("https://www.google.com/", None),
    (
        "https://www.google.com/",
        {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand"},
    ),
    (
        "https://vk.com/smile_clinic",
        {"utm_source": "vk", "utm_medium": "social", "utm_campaign": "spring"},
    ),
    ("https://ok.ru/group/5566", {"utm_source": "ok", "utm_medium": "social"}),
    ("https://t.me/smile_clinic", {"utm_source": "telegram", "utm_medium": "social"}),
    (
        "https://prodoctorov.ru/moskva/lpu/12345-ulybka/",
        {"utm_source": "prodoctorov", "utm_medium": "referral"},
    ),
    ("https://napopravku.ru/moskva/clinics/ulybka/", None),
    (None, None),
]
LANDING_PAGES = ["/", "/implantatsiya/", "/detskaya-stomatologiya/", "/akcii/", "/vrachi/"]
METRICA_SHARE = 0.75  # leads whose visit carried a Metrica ClientID
AUTO_TAGGED_SHARE = 0.9  # paid clicks whose landing URL got a yclid or gclid
GCLID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class FakeLead:
    """One invented lead, independent of any wire format."""

    created_at: datetime
    name: str
    surname: str
    first_name: str
    patronymic: str | None
    female: bool
    phone: str
    email: str | None
    comment: str | None
    form_name: str
    utm: dict[str, str]
    tags_in_fields: bool  # False: the tags exist only in the landing URL's query string
    page_url: str
    landing_url: str
    referrer: str | None
    doctor_id: str | None = None
    doctor_name: str | None = None
    plan_start: datetime | None = None
    plan_end: datetime | None = None
    ym_client_id: str | None = None  # Metrica's ClientID (the _ym_uid cookie)
    yclid: str | None = None  # in landing_url's query too
    gclid: str | None = None  # in landing_url's query too
    extra: dict[str, Any] = field(default_factory=dict)


class FakeLeadFactory:
    """Deterministic fake leads: the same seed gives the same sequence."""

    def __init__(
        self,
        *,
        seed: int = 0,
        doctors: Iterable[tuple[str, str]] = (),
        tz: tzinfo = MOSCOW,
        site: str = "https://ulybka-clinic.ru",
        doctor_share: float = 0.4,
    ) -> None:
        self.rng = random.Random(seed)
        # Click ids draw from their own generator: the rest of the sequence stays as it was.
        self.click_rng = random.Random(f"click-ids-{seed}")
        self.doctors = list(doctors)
        self.tz = tz
        self.site = site.rstrip("/")
        self.doctor_share = doctor_share

    def phone(self) -> str:
        rng = self.rng
        if rng.random() < 0.04:
            return rng.choice(["123-45", "нет", "+7 (000) 000", "89"])  # typos people make
        a = f"9{rng.randint(0, 99):02d}"
        b, c, d = (
            f"{rng.randint(0, 999):03d}",
            f"{rng.randint(0, 99):02d}",
            f"{rng.randint(0, 99):02d}",
        )
        return rng.choice(PHONE_FORMATS).format(a=a, b=b, c=c, d=d)

    def click_ids(self, created_at: datetime, utm: dict[str, str]) -> dict[str, str | None]:
        """A visit's ClientID and a paid click's yclid or gclid, as the services make them."""
        rng = self.click_rng
        ids: dict[str, str | None] = dict.fromkeys(("ym_client_id", "yclid", "gclid"))
        if rng.random() < METRICA_SHARE:
            first_visit = int(created_at.timestamp()) - rng.randint(0, 90 * 86400)
            ids["ym_client_id"] = f"{first_visit}{rng.randint(100_000_000, 999_999_999)}"
        paid = utm.get("utm_medium") == "cpc" and rng.random() < AUTO_TAGGED_SHARE
        if paid and utm.get("utm_source") == "yandex":
            ids["yclid"] = str(rng.randint(10**16, 10**19 - 1))
        elif paid and utm.get("utm_source") == "google":
            ids["gclid"] = "Cj0KCQiA" + "".join(rng.choices(GCLID_CHARS, k=70)) + "_BwE"
        return ids

    def make(self, created_at: datetime, *, with_doctor: bool | None = None) -> FakeLead:
        rng = self.rng
        female = rng.random() < 0.6
        surname = rng.choice(SURNAMES) + ("а" if female else "")
        first = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
        patronymic = rng.choice(FEMALE_PATRONYMICS if female else MALE_PATRONYMICS)
        name = rng.choice([first, f"{first} {surname}", f"{surname} {first} {patronymic}"])
        referrer, tags = rng.choice(CHANNELS)
        utm = dict(tags or {})
        page_url = self.site + rng.choice(LANDING_PAGES)
        ids = self.click_ids(created_at, utm)
        in_url = {**utm, **{key: ids[key] for key in ("yclid", "gclid") if ids[key]}}
        query = "&".join(f"{k}={v.replace(' ', '+')}" for k, v in in_url.items())
        landing_url = f"{page_url}?{query}" if query else page_url
        lead = FakeLead(
            created_at=created_at,
            name=name,
            surname=surname,
            first_name=first,
            patronymic=patronymic,
            female=female,
            phone=self.phone(),
            email=(
                f"patient{rng.randint(100, 99999)}@{rng.choice(EMAIL_DOMAINS)}"
                if rng.random() < 0.5
                else None
            ),
            comment=rng.choice(COMMENTS),
            form_name=rng.choice(FORM_NAMES),
            utm=utm,
            tags_in_fields=rng.random() < 0.7,
            page_url=page_url,
            landing_url=landing_url,
            referrer=referrer,
            **ids,
        )
        if with_doctor is None:
            with_doctor = rng.random() < self.doctor_share
        if with_doctor and self.doctors:
            lead.doctor_id, lead.doctor_name = rng.choice(self.doctors)
            day = created_at.astimezone(self.tz).date() + timedelta(days=rng.randint(1, 10))
            minutes = rng.randrange(9 * 60, 19 * 60, 30)
            lead.plan_start = datetime(day.year, day.month, day.day, tzinfo=self.tz) + timedelta(
                minutes=minutes
            )
            lead.plan_end = lead.plan_start + timedelta(minutes=30)
        return lead


def tilda_form(lead: FakeLead, tranid: str, *, send_cookies: bool) -> dict[str, str]:
    """The form fields Tilda posts for ``lead``; ``send_cookies`` is the webhook's "send
    cookies" switch (integrations.md "Tilda"; marketing-apis.md D)."""
    form = {"Name": lead.name, "Phone": lead.phone, "tranid": tranid, "formid": "form123456"}
    if lead.email:
        form["Email"] = lead.email
    if send_cookies:
        cookies = [f"tildauid={int(lead.created_at.timestamp())}.{tranid.split(':')[-1]}"]
        if lead.ym_client_id:
            cookies += [f"_ym_uid={lead.ym_client_id}", "_ym_d=" + lead.ym_client_id[:10]]
        if lead.utm:
            tilda_utm = "".join(f"{key}={value}|||" for key, value in lead.utm.items())
            cookies.append("TILDAUTM=" + quote(tilda_utm, safe=""))
        form["COOKIES"] = "; ".join(cookies)
    return form


def webhook_body(lead: FakeLead, lead_id: str) -> dict[str, Any]:
    """What a clinic's site posts to the generic webhook for ``lead`` (docs/integrations.md):
    the site's Metrica tag gives the ClientID; the landing URL carries any yclid or gclid."""
    body = {
        "id": lead_id,
        "name": lead.name,
        "phone": lead.phone,
        "email": lead.email,
        "comment": lead.comment,
        "form": lead.form_name,
        "landing_url": lead.landing_url,
        "referrer": lead.referrer,
        "ym_client_id": lead.ym_client_id,
    }
    return {key: value for key, value in body.items() if value is not None}


class LeadServingSimulator(SimulatorServer):
    """A simulator that stores lead records with the moment each became visible.

    Subclasses set ``id_field``/``time_field``/``text_field`` and render ``FakeLead``s in
    their wire format with ``render``. ``add_lead`` seeds a lead (wire fields may be
    overridden), ``generate`` adds new ones for the live demo, ``add_record`` stores any
    value verbatim (for malformed records), ``add_malformed`` stores a typical broken one.
    A late lead is ``add_lead(<earlier time>)`` called after a pull.
    """

    id_field = "id"
    time_field = "time"
    text_field = "name"

    def __init__(
        self,
        *,
        seed: int = 0,
        doctors: Iterable[tuple[str, str]] = (),
        tz: tzinfo = MOSCOW,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        first_serial: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.tz = tz
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.factory = FakeLeadFactory(seed=seed, doctors=doctors, tz=tz)
        self._data_lock = threading.RLock()
        self._records: list[tuple[datetime, int, Any]] = []
        # Ids derive from the serial: a demo restarted later passes a higher start so that
        # new leads do not reuse the ids of leads already stored.
        self._serial = first_serial

    # -- seeding -------------------------------------------------------
    def next_serial(self) -> int:
        with self._data_lock:
            self._serial += 1
            return self._serial

    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        raise NotImplementedError

    def add_record(self, record: Any, at: datetime | None = None) -> Any:
        """Store ``record`` exactly as given, visible from ``at`` (default: now)."""
        at = at or self.clock()
        with self._data_lock:
            self._records.append((at, self.next_serial(), record))
        return record

    def add_lead(
        self,
        at: datetime | None = None,
        *,
        with_doctor: bool | None = None,
        **wire_fields: Any,
    ) -> dict[str, Any]:
        """A generated lead created at ``at`` (default: now), ``wire_fields`` overridden."""
        at = at or self.clock()
        with self._data_lock:
            record = self.render(self.factory.make(at, with_doctor=with_doctor), 0)
            record.update(wire_fields)
            return self.add_record(record, at)

    def generate(
        self, n: int, now: datetime | None = None, *, spread_seconds: float = 110
    ) -> list[dict[str, Any]]:
        """``n`` new leads created within ``spread_seconds`` before ``now``, oldest first."""
        now = now or self.clock()
        with self._data_lock:
            offsets = sorted(self.factory.rng.uniform(0, spread_seconds) for _ in range(n))
            return [self.add_lead(now - timedelta(seconds=s)) for s in reversed(offsets)]

    def add_malformed(self, kind: str, at: datetime | None = None) -> dict[str, Any]:
        """A lead broken in one way: ``missing_id``, ``bad_time`` or ``wrong_type``."""
        at = at or self.clock()
        with self._data_lock:
            record = self.render(self.factory.make(at), 0)
        if kind == "missing_id":
            record.pop(self.id_field, None)
        elif kind == "bad_time":
            record[self.time_field] = "вчера около обеда"
        elif kind == "wrong_type":
            record[self.text_field] = ["not", "text"]
        else:
            raise ValueError(f"unknown malformation {kind!r}")
        return self.add_record(record, at)

    # -- reading -------------------------------------------------------
    def records_between(
        self, start: datetime | None, end: datetime | None, *, end_inclusive: bool = False
    ) -> list[Any]:
        """Records visible in the period, oldest first (ties in insertion order)."""
        with self._data_lock:
            rows = sorted(self._records, key=lambda row: (row[0], row[1]))
        return [
            record
            for at, _, record in rows
            if (start is None or at >= start)
            and (end is None or at < end or (end_inclusive and at == end))
        ]

    @property
    def records(self) -> list[Any]:
        return self.records_between(None, None)
