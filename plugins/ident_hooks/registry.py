"""The one registry of integration kinds: which protocols exist and what each can do.

A *kind* is a protocol: the module that speaks it (a payload builder for an aggregator,
an adapter for a lead source), where its secret goes, its label for staff, its
capabilities and the Airflow connection type its connections have (the form a person
fills in under Admin → Connections; ``ident_hooks.provider`` declares them to Airflow).
``include/integrations.yaml`` names *instances* of kinds, each with its own Airflow
connection, so a second Flexbe landing or another IDENT partner is a YAML
entry and a connection. A new protocol is one module, its simulator and one entry here;
nothing else in the code, the SQL or the DAG files lists integration names.

Nothing here imports the modules it names: DAG files read the registry at parse time.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ident_hooks.auth import AuthStyle

if TYPE_CHECKING:
    pass

# Where each service takes its secret (the facts and their sources are in each
# connector's docstring); the generic client only applies an AuthStyle.
PRODOCTOROV_TOKEN = AuthStyle(header="Authorization", header_format="Token {secret}")
NAPOPRAVKU_BEARER = AuthStyle(
    header="Authorization",
    header_format="Bearer {secret}",
    headers={"Accept": "application/json"},
)
IDENT_INTEGRATION_KEY = AuthStyle(header="IDENT-Integration-Key")
FLEXBE_API_KEY = AuthStyle(form_param="api_key")
YANDEX_DIRECT_BEARER = AuthStyle(
    header="Authorization",
    header_format="Bearer {secret}",
    # Russian error texts would reach staff as they are; English ones reach the data team.
    headers={"Accept-Language": "en"},
)
# Yandex Metrica's management API (marketing-apis.md A): "OAuth <token>".
YANDEX_METRICA_OAUTH = AuthStyle(
    header="Authorization", header_format="OAuth {secret}", headers={"Accept-Language": "en"}
)
SECRET_IN_BODY = AuthStyle()


def _import_connector(dotted_path: str) -> type:
    # The standard library's resolver, not Airflow's import_string: a bench or the intake
    # loads a connector without paying for importing Airflow.
    return pkgutil.resolve_name(dotted_path)


@dataclass(frozen=True)
class ConnectionType:
    """An Airflow connection type: the form for one service's connection.

    ``name`` is Airflow's ``conn_type``; ``hook_name`` is shown in the form's type list.
    ``secret`` relabels the Password field with what that service calls its secret.
    ``base_url`` is the Host field's placeholder (the service's address where
    docs/integrations.md gives one); None means the service calls us (a pushed lead, the
    intake's GetTickets) and has no address of its own, so Host is hidden as well.
    Login, Port and Schema are never used: every secret travels as the kind's
    :class:`~ident_hooks.auth.AuthStyle` says, the port is part of the URL.
    """

    name: str
    hook_name: str
    secret: str
    base_url: str | None = None
    secret_placeholder: str | None = None
    # HTTP headers a connection of this type may carry in its extra, each with its form
    # label: HttpHook sends every extra key as a header (Yandex Direct's Client-Login).
    header_fields: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def outgoing(self) -> bool:
        """We call the service (an HTTP connection with a base URL and a timeout)."""
        return self.base_url is not None

    @property
    def hook_class_name(self) -> str:
        """The class in ``ident_hooks.hooks`` that Airflow shows for this type."""
        return "".join(part.capitalize() for part in self.name.split("_")) + "Hook"

    def ui_field_behaviour(self) -> dict[str, Any]:
        """Airflow's ``ui-field-behaviour``: hidden, relabelled and pre-filled fields."""
        hidden = ["login", "port", "schema"] + ([] if self.outgoing else ["host"])
        relabeling = {"password": self.secret}
        placeholders = {}
        if self.outgoing:
            relabeling["host"] = "Base URL"
            placeholders["host"] = self.base_url
        if self.secret_placeholder:
            placeholders["password"] = self.secret_placeholder
        return {"hidden-fields": hidden, "relabeling": relabeling, "placeholders": placeholders}

    def conn_fields(self) -> dict[str, Any]:
        """Airflow's ``conn-fields``: the form's own fields, kept in the connection's extra.

        ``timeout`` for the services we call, and the type's ``header_fields``:
        ``HttpHook`` sends every other extra key as an HTTP header, so nothing but the
        headers a service wants may live there.
        """
        if not self.outgoing:
            return {}
        headers = {
            name: {
                "label": label,
                "description": f"Sent as the HTTP header {name}",
                "schema": {"type": ["string", "null"]},
            }
            for name, label in self.header_fields.items()
        }
        return {
            "timeout": {
                "label": "Timeout, seconds",
                "description": "How long to wait for the service's answer "
                "(empty: 5 s to connect, 30 s to read)",
                "schema": {"type": ["integer", "null"], "minimum": 1},
            },
            **headers,
        }


# One connection type per service; kinds that share a service's connection share its type.
PRODOCTOROV_CONNECTION = ConnectionType(
    "prodoctorov", "ПроДокторов", "API token", base_url="https://api.prodoctorov.ru"
)
NAPOPRAVKU_CONNECTION = ConnectionType(
    "napopravku",
    "НаПоправку (RTA API)",
    "RTA API token",
    base_url="https://rta-api.napopravku.ru/api/v1",
)
# The IDENT HTTP protocol: one base URL and key for PostTimeTable and GetTickets (32top
# takes the schedule and serves its tickets on one connection).
IDENT_CONNECTION = ConnectionType(
    "ident_http",
    "IDENT HTTP protocol (СберЗдоровье, 32top, clinic sites)",
    "Integration key (IDENT-Integration-Key)",
    base_url="https://… (the partner's base URL: where /GetTickets and /PostTimeTable are)",
)
UIS_CONNECTION = ConnectionType(
    "uis_data_api", "UIS Data API", "Data API access token", base_url="https://dataapi.uiscom.ru"
)
FLEXBE_CONNECTION = ConnectionType(
    "flexbe", "Flexbe", "API key", base_url="https://<your landing's domain>"
)
TILDA_CONNECTION = ConnectionType(
    "tilda_webhook",
    "Tilda webhook (to the intake service)",
    "Webhook secret",
    secret_placeholder="the last part of the webhook address given to Tilda",
)
WEBHOOK_CONNECTION = ConnectionType(
    "intake_webhook",
    "Site form webhook (to the intake service)",
    "Bearer token",
    secret_placeholder="what the site sends as Authorization: Bearer …",
)
UIS_NOTIFICATION_CONNECTION = ConnectionType(
    "uis_notification",
    "UIS call notifications (to the intake service)",
    "Notification secret",
    secret_placeholder="the last part of the notification address given to UIS",
)
# Yandex Direct API v5: an OAuth token; an agency's token also needs the advertiser's login
# in the Client-Login header (marketing-apis.md C).
YANDEX_DIRECT_CONNECTION = ConnectionType(
    "yandex_direct",
    "Yandex Direct API (ad costs)",
    "OAuth token",
    base_url="https://api.direct.yandex.com",
    header_fields={"Client-Login": "Client-Login (the advertiser's login, for agency tokens)"},
)
# Yandex Metrica's management API: an OAuth token with the counter's edit rights
# (marketing-apis.md A); the counter itself is named in include/integrations.yaml.
YANDEX_METRICA_CONNECTION = ConnectionType(
    "yandex_metrica",
    "Yandex Metrica (offline conversions)",
    "OAuth token",
    base_url="https://api-metrika.yandex.net",
)
# Not a kind: the intake service's own GetTickets, which a clinic's IDENT pulls.
INTAKE_TICKETS_CONNECTION = ConnectionType(
    "intake_tickets",
    "Intake GetTickets key (for the clinic's IDENT)",
    "Integration key (IDENT-Integration-Key)",
    secret_placeholder="the key IDENT must send to pull the intake's leads",
)


@dataclass(frozen=True)
class AggregatorKind:
    """A schedule-publishing protocol.

    ``connector`` is the dotted path of its publisher class (under
    ``ident_hooks.schedule.aggregators``: endpoints, auth, how a schedule is cut into
    requests, the rendering); ``skip_unchanged`` maps a request kind to how long a
    request whose body equals the last one accepted may go unsent (kinds not named are
    sent on every run); ``fixed_days_ahead`` overrides the clinic's ``days_ahead``,
    counted in ``horizon_zone``'s date (None: each branch's own);
    ``sends_busy`` says whether busy cells go out beside free slots;
    ``max_request_bytes`` is the largest body its receivers are known to take (None: not
    known), which an instance may override. Those rules are for
    an instance that rereads the clinic on every tick (``publish_on_change: false``). A
    change-driven instance sends a request when its body changed and, unchanged, only as
    often as the service itself demands: ``resend_every`` (kind -> period), plus the
    daily full snapshot (:mod:`ident_hooks.schedule.publish`). ``title`` is the
    default label of an instance (None for a protocol many services speak: the instance
    then needs its own ``title`` in the YAML, else its name is shown). ``connection`` is
    the Airflow connection type of its instances' connections.
    ``sets_demand_rules``: the export rules of this kind's instance (its slot length,
    per-doctor slot lengths and hidden doctors) are the ones the ``report.doctor_demand``
    free slots are counted by (:mod:`ident_hooks.reports.demand`); exactly one kind has it.
    """

    name: str
    title: str | None
    connection: ConnectionType
    payload: str  # what is sent, for the DAG's documentation
    sends_busy: bool
    fixed_days_ahead: int | None = None
    horizon_zone: str | None = None
    skip_unchanged: Mapping[str, timedelta] = field(default_factory=dict, hash=False)
    resend_every: Mapping[str, timedelta] = field(default_factory=dict, hash=False)
    # The request kind that carries doctors' time (the others carry reference data): its
    # acceptance is when the service received the schedule of the doctors of its branches.
    schedule_request: str = "schedule"
    max_request_bytes: int | None = None
    sets_demand_rules: bool = False
    # Imported only when a task runs.
    connector: str = field(kw_only=True)

    def connector_class(self) -> type:
        return _import_connector(self.connector)


@dataclass(frozen=True)
class LeadSourceKind:
    """A lead source protocol, pulled or pushed: ``connector`` is the dotted path of its
    class under ``ident_hooks.leads.sources`` (endpoint, auth, paging, field map; for a
    pushed kind its intake route).

    ``acknowledges``: the service must be told, after the commit, that a lead was stored.
    ``revisit_days``: leads change state at the source after the day they came (Flexbe's
    cancelled and deleted), so every pull reads at least this many days back.
    ``push``: the service only calls us back (Tilda, site webhooks): its leads arrive at
    the intake service (``ident_hooks.intake``) and no pull DAG is made for it; its
    connection's password is the secret the service must present.
    ``channel``: the marketing channel of every lead of its instances whatever their tags
    (``aggregator`` for an aggregator's own booking system: the booking was made there);
    None lets tags and referrer decide (:mod:`ident_hooks.reports.channels`). An instance
    may set its own (``channel:`` in ``include/integrations.yaml``).
    ``serves_sites``: the kind of the ``sites:`` shorthand of ``include/integrations.yaml``
    (clinic websites, source ``site_<name>``); exactly one kind has it.
    ``carries_calls``: its leads may be phone calls (a record holding ``call_mark``), each
    keeping the number dialled in ``dialled_field`` of the record as received: the inbox
    shows them as calls, the reports count them and map the number to a channel.
    ``title`` and ``connection`` as for :class:`AggregatorKind`.
    """

    name: str
    title: str | None
    connection: ConnectionType
    acknowledges: bool = False
    revisit_days: int = 0
    push: bool = False
    channel: str | None = None
    serves_sites: bool = False
    carries_calls: bool = False
    # Imported only when a task or the intake runs.
    connector: str = field(kw_only=True)

    def connector_class(self) -> type:
        return _import_connector(self.connector)


@dataclass(frozen=True)
class CostSourceKind:
    """An advertising platform we read daily ad costs from, per campaign.

    ``connector`` is the dotted path of its class under ``ident_hooks.costs`` (endpoint,
    auth, the report request, how its reply is read); ``revisit_days`` is how many days
    back up to yesterday each import reads by default, because the platform still revises
    them (an instance may set its own ``days_back``). ``title`` and ``connection`` as for
    :class:`AggregatorKind`.
    """

    name: str
    title: str | None
    connection: ConnectionType
    revisit_days: int = 3
    # Imported only when a task runs.
    connector: str = field(kw_only=True)

    def connector_class(self) -> type:
        return _import_connector(self.connector)


@dataclass(frozen=True)
class ConversionSinkKind:
    """An ad system or analytics service we tell which leads became what (issue 19).

    ``connector`` is the dotted path of its class under ``ident_hooks.conversions``
    (a :class:`ident_hooks.conversions.ConversionConnector`: which events it can carry,
    how they are sent, how an upload's fate is followed). ``needs_counter``: an instance
    must name the service's counter (``counter_id`` in the YAML). ``title`` and
    ``connection`` as for :class:`AggregatorKind`.
    """

    name: str
    title: str | None
    connection: ConnectionType
    needs_counter: bool = False
    # Imported only when a task runs.
    connector: str = field(kw_only=True)

    def connector_class(self) -> type:
        return _import_connector(self.connector)


AGGREGATOR_KINDS: Mapping[str, AggregatorKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            AggregatorKind(
                name="prodoctorov",
                title="ПроДокторов",
                connector="ident_hooks.schedule.aggregators.prodoctorov.ProdoctorovPublisher",
                connection=PRODOCTOROV_CONNECTION,
                payload="free and busy cells, `v2/doctors/send_schedule/`",
                sends_busy=True,
                skip_unchanged={"schedule": timedelta(minutes=60)},
                # report.doctor_demand counts free slots by ПроДокторов's export rules
                # (docs/reports.md).
                sets_demand_rules=True,
            ),
            AggregatorKind(
                name="napopravku",
                title="НаПоправку",
                connector="ident_hooks.schedule.aggregators.napopravku.NapopravkuPublisher",
                connection=NAPOPRAVKU_CONNECTION,
                payload="clinics, doctors and free ranges, RTA API `slots`",
                sends_busy=False,
                # Vendor rule (napopravku/rta-api-service-client README): the horizon is
                # today + 32; slots every 10 minutes or more often, changed or not;
                # clinics and doctors daily or more often.
                fixed_days_ahead=32,
                # «наше API работает в UTC» (README): a Yekaterinburg branch just after its
                # midnight must not send today + 33 by the service's count. UTC's date is
                # never ahead of a Russian branch's, so this stays inside the service's window.
                horizon_zone="UTC",
                skip_unchanged={
                    "clinics": timedelta(hours=6),
                    "doctors": timedelta(hours=6),
                },
                # «Правила работы с сервисом» (napopravku/rta-api-service-client README):
                # slots every 10 minutes or more often, clinics and doctors at least daily.
                # 9 minutes: the 10-minute timer's run always finds the last send older.
                resend_every={
                    "slots": timedelta(minutes=9),
                    "clinics": timedelta(hours=6),
                    "doctors": timedelta(hours=6),
                },
                schedule_request="slots",
                # Not documented by the service: nginx refuses bodies over 1 MiB by
                # default, so slots are split well below it.
                max_request_bytes=900_000,
            ),
            AggregatorKind(
                name="ident_timetable",
                title=None,
                connector="ident_hooks.schedule.aggregators.ident_timetable.IdentTimetablePublisher",
                connection=IDENT_CONNECTION,
                payload="IDENT `PostTimeTable`: the whole timetable, free and busy",
                sends_busy=True,
                skip_unchanged={"timetable": timedelta(minutes=60)},
                schedule_request="timetable",
                # The largest public receiver: bodyParser.json({ limit: '50mb' }) in
                # brearey/smmikod src/index.ts, i.e. 50 MiB of decoded JSON.
                max_request_bytes=50 * 1024 * 1024,
            ),
        )
    }
)

LEAD_SOURCE_KINDS: Mapping[str, LeadSourceKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            LeadSourceKind(
                "uis",
                "UIS",
                UIS_CONNECTION,
                connector="ident_hooks.leads.sources.uis.UisSource",
            ),
            # A lead cancelled or deleted in Flexbe days later must leave the inbox.
            LeadSourceKind(
                "flexbe",
                "Flexbe",
                FLEXBE_CONNECTION,
                revisit_days=7,
                connector="ident_hooks.leads.sources.flexbe.FlexbeSource",
            ),
            LeadSourceKind(
                "napopravku",
                "НаПоправку",
                NAPOPRAVKU_CONNECTION,
                acknowledges=True,
                channel="aggregator",
                connector="ident_hooks.leads.sources.napopravku.NapopravkuSource",
            ),
            # Clinic websites speak it too; an aggregator's instance says
            # `channel: aggregator`.
            LeadSourceKind(
                "ident_tickets",
                None,
                IDENT_CONNECTION,
                serves_sites=True,
                connector="ident_hooks.leads.sources.ident_tickets.IdentTicketsSource",
            ),
            # Pushed to the intake service.
            LeadSourceKind(
                "tilda",
                "Tilda",
                TILDA_CONNECTION,
                push=True,
                connector="ident_hooks.leads.sources.tilda.TildaSource",
            ),
            LeadSourceKind(
                "webhook",
                None,
                WEBHOOK_CONNECTION,
                push=True,
                connector="ident_hooks.leads.sources.webhook.WebhookSource",
            ),
            # UIS HTTP event notifications (calls, site requests).
            LeadSourceKind(
                "uis_notification",
                "UIS: звонки",
                UIS_NOTIFICATION_CONNECTION,
                push=True,
                # A call's notification has call_session_id and virtual_phone_number
                # (ident_hooks.leads.sources.uis_notification).
                carries_calls=True,
                connector="ident_hooks.leads.sources.uis_notification.UisNotificationSource",
            ),
        )
    }
)

COST_SOURCE_KINDS: Mapping[str, CostSourceKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            # Direct revises the last days' statistics (clicks found invalid are refunded),
            # so the last 3 days are read again on every import.
            CostSourceKind(
                "yandex_direct",
                "Яндекс Директ",
                YANDEX_DIRECT_CONNECTION,
                revisit_days=3,
                connector="ident_hooks.costs.yandex_direct.YandexDirectReports",
            ),
        )
    }
)

CONVERSION_SINK_KINDS: Mapping[str, ConversionSinkKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            ConversionSinkKind(
                "yandex_metrica",
                "Яндекс Метрика",
                YANDEX_METRICA_CONNECTION,
                needs_counter=True,
                connector="ident_hooks.conversions.yandex_metrica.YandexMetricaConversions",
            ),
            # Deals on the same Data API and token as the UIS lead pull.
            ConversionSinkKind(
                "uis_deals",
                "UIS: сделки",
                UIS_CONNECTION,
                connector="ident_hooks.conversions.uis_deals.UisDeals",
            ),
        )
    }
)

(SITES_KIND,) = [kind for kind in LEAD_SOURCE_KINDS.values() if kind.serves_sites]
(DEMAND_RULES_KIND,) = [kind for kind in AGGREGATOR_KINDS.values() if kind.sets_demand_rules]


# Every connection type, from the kinds (and the intake's own key): the provider declares
# exactly these, so a new kind brings its form with it.
CONNECTION_TYPES: Mapping[str, ConnectionType] = MappingProxyType(
    {
        connection.name: connection
        for connection in [
            *(kind.connection for kind in AGGREGATOR_KINDS.values()),
            *(kind.connection for kind in LEAD_SOURCE_KINDS.values()),
            *(kind.connection for kind in COST_SOURCE_KINDS.values()),
            *(kind.connection for kind in CONVERSION_SINK_KINDS.values()),
            INTAKE_TICKETS_CONNECTION,
        ]
    }
)


def record_instances(conn: Any, config: Any) -> None:
    """Write the configured instances and their labels to ``integration.integrations``.

    Called by the migration commands and at the start of every pull and publish run, so
    the labels staff see follow the YAML file; rows of removed instances stay.
    """
    rows = [("aggregator", a.name, a.kind, a.title) for a in config.aggregators] + [
        ("lead_source", s.name, s.kind, s.title) for s in config.lead_sources
    ]
    conn.execute(
        """
        insert into integration.integrations (role, name, kind, title)
        select * from unnest(%s::text[], %s::text[], %s::text[], %s::text[])
        on conflict (role, name) do update
           set kind = excluded.kind, title = excluded.title, updated_at = now()
         where (integrations.kind, integrations.title) is distinct from
               (excluded.kind, excluded.title)
        """,
        [list(column) for column in zip(*rows, strict=True)] if rows else [[], [], [], []],
    )
