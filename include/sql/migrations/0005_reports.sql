-- Marketing reports. Schema `report` is the product marketers query: aggregates only, no
-- patient names or phones. Schema `report_build` holds the build's own working tables
-- (per-lead facts and appointment phones, so it does hold phones) and is not for marketers.
-- The build itself is plugins/ident_hooks/reports/ (DAG build_marketing_reports).

create schema if not exists report;
create schema if not exists report_build;
comment on schema report is
    'Маркетинговые отчёты по заявкам: источники, каналы, UTM-кампании, скорость ответа, '
    'конверсия в запись. Обновляются DAG build_marketing_reports при каждой новой заявке и '
    'раз в сутки. Без ФИО и телефонов пациентов.';
comment on schema report_build is
    'Служебные таблицы сборки отчётов (содержат телефоны пациентов): не для маркетологов.';

-- Every insert, update and delete of a lead is noted here by the triggers below; each
-- build consumes the notes it can see, so no change is missed or handled twice, whoever
-- made it (ingestion, the inbox, a manual fix). Append-only, no key: writers never wait.
create table report_build.lead_changes (
    lead_id bigint not null
);
comment on table report_build.lead_changes is
    'Очередь изменённых заявок (id) для следующей сборки отчётов; заполняется триггерами.';
comment on column report_build.lead_changes.lead_id is 'integration.leads.lead_id';

create function report_build.note_changed_leads() returns trigger
language plpgsql as $$
begin
    insert into report_build.lead_changes (lead_id) select lead_id from changed_leads;
    return null;
end;
$$;
create trigger leads_noted_for_reports_on_insert
    after insert on integration.leads
    referencing new table as changed_leads
    for each statement execute function report_build.note_changed_leads();
create trigger leads_noted_for_reports_on_update
    after update on integration.leads
    referencing new table as changed_leads
    for each statement execute function report_build.note_changed_leads();
create trigger leads_noted_for_reports_on_delete
    after delete on integration.leads
    referencing old table as changed_leads
    for each statement execute function report_build.note_changed_leads();

create table report.build_state (
    id                  boolean primary key default true check (id),
    built_at            timestamptz not null,
    mode                text not null check (mode in ('full', 'incremental')),
    clinic_timezone     text not null,
    definitions_hash    text not null,
    full_rebuild_needed boolean not null default false
);
comment on table report.build_state is
    'Когда отчёты обновлялись последний раз (одна строка). Служебные поля нужны сборке.';
comment on column report.build_state.id is 'Всегда true: таблица из одной строки.';
comment on column report.build_state.built_at is
    'Время последнего обновления отчётов: данные актуальны на этот момент.';
comment on column report.build_state.mode is
    'Как обновлялись: full — пересчитано всё, incremental — только затронутые дни.';
comment on column report.build_state.clinic_timezone is
    'Часовой пояс клиники, по которому заявки разложены по дням.';
comment on column report.build_state.definitions_hash is
    'Отпечаток правил расчёта (каналы, окна 30 дней, 5 минут): при их смене всё '
    'пересчитывается автоматически.';
comment on column report.build_state.full_rebuild_needed is
    'true — следующая сборка пересчитает всё (ставится, например, после очистки заявок).';

-- Emptying the leads table cannot be noted lead by lead: the next build rebuilds all.
create function report_build.need_full_rebuild() returns trigger
language plpgsql as $$
begin
    update report.build_state set full_rebuild_needed = true;
    return null;
end;
$$;
create trigger leads_truncated_rebuild_reports
    after truncate on integration.leads
    for each statement execute function report_build.need_full_rebuild();

-- Appointments as the reports last saw them, with the phone in E.164: a run compares the
-- clinic's table with this copy to find new, cancelled, changed and deleted appointments.
create table report_build.appointment_phones (
    appointment_id text primary key,
    patient_phone  text,
    phone_e164     text,
    created_at     timestamptz not null,
    is_active      boolean not null
);
create index appointment_phones_by_phone on report_build.appointment_phones
    (phone_e164, created_at) where is_active;
comment on table report_build.appointment_phones is
    'Копия записей на приём (clinic.appointments) с нормализованным телефоном — для конверсии.';
comment on column report_build.appointment_phones.appointment_id is
    'clinic.appointments.appointment_id';
comment on column report_build.appointment_phones.patient_phone is 'Телефон как в записи.';
comment on column report_build.appointment_phones.phone_e164 is
    'Телефон в формате +79161234567 (как integration.leads.phone_e164); пусто — не распознан.';
comment on column report_build.appointment_phones.created_at is 'Когда запись была создана.';
comment on column report_build.appointment_phones.is_active is 'false — запись отменена.';

-- One row per lead: everything the report tables aggregate, computed once per change.
create table report_build.lead_facts (
    lead_id          bigint primary key,
    created_at       timestamptz not null,
    day              date not null,
    week             date not null,
    branch_id        text,
    source           text not null,
    channel          text not null,
    utm_source       text,
    utm_medium       text,
    utm_campaign     text,
    referrer_host    text,
    doctor_id        text,
    phone_e164       text,
    is_spam          boolean not null,
    is_open          boolean not null,
    is_repeat        boolean not null,
    converted        boolean not null,
    response_seconds numeric,
    load_lag_seconds numeric
);
create index lead_facts_day on report_build.lead_facts (day);
create index lead_facts_campaign on report_build.lead_facts (utm_campaign)
    where utm_campaign is not null;
create index lead_facts_doctor_week on report_build.lead_facts (week, doctor_id)
    where doctor_id is not null;
comment on table report_build.lead_facts is
    'Одна строка на заявку: всё, из чего складываются таблицы report (день, канал, '
    'повторная ли, стала ли записью, время ответа).';
comment on column report_build.lead_facts.lead_id is 'integration.leads.lead_id';
comment on column report_build.lead_facts.created_at is 'Когда заявка создана в источнике.';
comment on column report_build.lead_facts.day is 'День заявки по времени клиники.';
comment on column report_build.lead_facts.week is 'Понедельник недели заявки.';
comment on column report_build.lead_facts.branch_id is 'Филиал.';
comment on column report_build.lead_facts.source is 'Источник заявки.';
comment on column report_build.lead_facts.channel is 'Канал (правила: ident_hooks.reports.channels).';
comment on column report_build.lead_facts.utm_source is 'utm_source';
comment on column report_build.lead_facts.utm_medium is 'utm_medium';
comment on column report_build.lead_facts.utm_campaign is 'utm_campaign';
comment on column report_build.lead_facts.referrer_host is 'Сайт, с которого пришли.';
comment on column report_build.lead_facts.doctor_id is 'Врач, к которому просились.';
comment on column report_build.lead_facts.phone_e164 is 'Телефон, по которому заявка учтена.';
comment on column report_build.lead_facts.is_spam is 'Администратор отметил заявку как спам.';
comment on column report_build.lead_facts.is_open is 'Заявка ещё не закрыта (new, in_progress).';
comment on column report_build.lead_facts.is_repeat is
    'С этого телефона уже была заявка (не спам) за предыдущие 30 дней.';
comment on column report_build.lead_facts.converted is
    'Пациент с этим телефоном записался на приём (запись не отменена) в течение 30 дней после '
    'заявки.';
comment on column report_build.lead_facts.response_seconds is
    'Секунд от создания заявки до того, как администратор взял её в работу.';
comment on column report_build.lead_facts.load_lag_seconds is
    'Секунд от создания заявки в источнике до появления в базе клиники.';

-- The product. Dimensions may be empty (NULL = "not known"); rows are unique with NULLs
-- treated as equal.

create table report.leads_daily (
    day                     date not null,
    branch_id               text,
    source                  text not null,
    channel                 text not null,
    utm_source              text,
    utm_medium              text,
    utm_campaign            text,
    referrer_host           text,
    leads                   int not null,
    unique_patients         int not null,
    repeat_leads            int not null,
    answered_in_5_min       int not null,
    median_response_seconds numeric,
    converted_leads         int not null,
    conversion_rate         numeric,
    spam_leads              int not null,
    constraint leads_daily_one_row_per_group unique nulls not distinct
        (day, branch_id, source, channel, utm_source, utm_medium, utm_campaign, referrer_host)
);
comment on table report.leads_daily is
    'Заявки по дням: сколько пришло из каждого источника, канала, UTM-кампании и сайта, '
    'как быстро ответили и сколько стали записью на приём. Одна строка — один день и одно '
    'сочетание филиала, источника, канала, UTM-меток и сайта-источника. Заявки, отмеченные '
    'как спам, не входят ни в один показатель, кроме spam_leads.';
comment on column report.leads_daily.day is
    'День создания заявки по времени клиники (Europe/Moscow, см. report.build_state).';
comment on column report.leads_daily.branch_id is
    'Филиал (clinic.branches.branch_id); пусто — источник не указал филиал.';
comment on column report.leads_daily.source is
    'Откуда загружена заявка: uis — колтрекинг UIS, flexbe — лендинги Flexbe, napopravku — '
    'НаПоправку, 32top — 32top, site_<имя> — сайт клиники.';
comment on column report.leads_daily.channel is
    'Канал привлечения: aggregator — агрегаторы (ПроДокторов, НаПоправку, СберЗдоровье, '
    'DocDoc, 32top), paid — платная реклама (cpc и т. п.), social — соцсети и мессенджеры, '
    'email — рассылки, organic — поисковики без рекламы, referral — переход с другого сайта, '
    'other — UTM-метки, которые не подошли ни под одно правило, direct — без меток и без '
    'сайта-источника. Правила — в docs/reports.md.';
comment on column report.leads_daily.utm_source is 'Метка utm_source; пусто — не было.';
comment on column report.leads_daily.utm_medium is 'Метка utm_medium; пусто — не было.';
comment on column report.leads_daily.utm_campaign is 'Метка utm_campaign (кампания); пусто — не было.';
comment on column report.leads_daily.referrer_host is
    'Сайт, с которого пациент перешёл (без www), например yandex.ru; пусто — неизвестно.';
comment on column report.leads_daily.leads is 'Заявок (без спама).';
comment on column report.leads_daily.unique_patients is
    'Разных пациентов среди этих заявок (разных телефонов; заявки без телефона не считаются).';
comment on column report.leads_daily.repeat_leads is
    'Повторных заявок: с этого телефона уже была заявка (из любого источника, не спам) за '
    'предыдущие 30 дней.';
comment on column report.leads_daily.answered_in_5_min is
    'Заявок, которые администратор взял в работу не позже чем через 5 минут после создания.';
comment on column report.leads_daily.median_response_seconds is
    'Медиана времени ответа, секунд: от создания заявки до «Взять в работу»; считается по '
    'взятым заявкам; пусто — ни одну не взяли.';
comment on column report.leads_daily.converted_leads is
    'Заявок, ставших записью на приём: на этот телефон в течение 30 дней после заявки '
    'создана запись к врачу, которая сейчас не отменена.';
comment on column report.leads_daily.conversion_rate is
    'Конверсия в запись: converted_leads / leads, доля от 0 до 1 (4 знака).';
comment on column report.leads_daily.spam_leads is 'Заявок, отмеченных администратором как спам.';

create table report.campaigns (
    utm_campaign            text not null,
    utm_source              text,
    utm_medium              text,
    channel                 text not null,
    first_day               date not null,
    last_day                date not null,
    leads                   int not null,
    unique_patients         int not null,
    repeat_leads            int not null,
    answered_in_5_min       int not null,
    median_response_seconds numeric,
    converted_leads         int not null,
    conversion_rate         numeric,
    spam_leads              int not null,
    constraint campaigns_one_row_per_campaign unique nulls not distinct
        (utm_campaign, utm_source, utm_medium, channel)
);
comment on table report.campaigns is
    'UTM-кампании за всё время: те же показатели, что в report.leads_daily, по каждой '
    'кампании (utm_campaign вместе с utm_source и utm_medium), с первым и последним днём, '
    'когда от неё приходили заявки. Заявки без utm_campaign сюда не входят.';
comment on column report.campaigns.utm_campaign is 'Метка utm_campaign — название кампании.';
comment on column report.campaigns.utm_source is 'Метка utm_source; пусто — не было.';
comment on column report.campaigns.utm_medium is 'Метка utm_medium; пусто — не было.';
comment on column report.campaigns.channel is
    'Канал привлечения (как в report.leads_daily.channel).';
comment on column report.campaigns.first_day is
    'Первый день, когда пришла заявка с этой кампанией (по времени клиники, включая спам).';
comment on column report.campaigns.last_day is
    'Последний день, когда пришла заявка с этой кампанией (по времени клиники, включая спам).';
comment on column report.campaigns.leads is 'Заявок (без спама) за всё время.';
comment on column report.campaigns.unique_patients is
    'Разных пациентов (разных телефонов) за всё время кампании.';
comment on column report.campaigns.repeat_leads is
    'Повторных заявок: с телефона уже была заявка (любой источник, не спам) за 30 дней до неё.';
comment on column report.campaigns.answered_in_5_min is
    'Заявок, взятых администратором в работу не позже чем через 5 минут.';
comment on column report.campaigns.median_response_seconds is
    'Медиана времени ответа по взятым в работу заявкам, секунд.';
comment on column report.campaigns.converted_leads is
    'Заявок, после которых в течение 30 дней появилась неотменённая запись на приём.';
comment on column report.campaigns.conversion_rate is
    'Конверсия в запись: converted_leads / leads (доля от 0 до 1).';
comment on column report.campaigns.spam_leads is 'Заявок, отмеченных как спам.';

create table report.response_time (
    day                      date not null,
    branch_id                text,
    leads                    int not null,
    answered_leads           int not null,
    answered_in_5_min        int not null,
    median_response_seconds  numeric,
    p90_response_seconds     numeric,
    median_load_lag_seconds  numeric,
    p90_load_lag_seconds     numeric,
    open_leads               int not null,
    constraint response_time_one_row_per_day unique nulls not distinct (day, branch_id)
);
comment on table report.response_time is
    'Скорость работы с заявками по дням и филиалам: как быстро администраторы берут заявки '
    'в работу и как быстро заявки доходят из источников до клиники. Без спама.';
comment on column report.response_time.day is 'День создания заявки по времени клиники.';
comment on column report.response_time.branch_id is 'Филиал; пусто — филиал не указан.';
comment on column report.response_time.leads is 'Заявок (без спама).';
comment on column report.response_time.answered_leads is 'Заявок, взятых в работу.';
comment on column report.response_time.answered_in_5_min is
    'Заявок, взятых в работу не позже чем через 5 минут после создания.';
comment on column report.response_time.median_response_seconds is
    'Медиана времени ответа (от создания до «Взять в работу»), секунд, по взятым заявкам.';
comment on column report.response_time.p90_response_seconds is
    '90-й перцентиль времени ответа, секунд: 9 из 10 взятых заявок взяли быстрее.';
comment on column report.response_time.median_load_lag_seconds is
    'Медиана задержки загрузки, секунд: от создания заявки в источнике до появления у клиники.';
comment on column report.response_time.p90_load_lag_seconds is
    '90-й перцентиль задержки загрузки, секунд.';
comment on column report.response_time.open_leads is
    'Заявок этого дня, которые ещё не закрыты (новые и в работе) на момент обновления отчёта.';

create table report.doctor_demand (
    week                date not null,
    doctor_id           text not null,
    leads               int not null,
    free_slots          int not null,
    leads_per_free_slot numeric,
    primary key (week, doctor_id)
);
comment on table report.doctor_demand is
    'Спрос и предложение по врачам по неделям: сколько заявок просили конкретного врача и '
    'сколько у него было свободных слотов. Свободные слоты считает тот же движок, что '
    'выгружает расписание, по правилам выгрузки ПроДокторов (длина слота, скрытые врачи): '
    'рабочее время минус записи (кроме отменённых) и минус время, которое держат открытые '
    'заявки, нарезанное на слоты; вся неделя целиком, с понедельника, без отсечки «ближайшие '
    'N часов». Для прошедших недель это оставшиеся незанятыми слоты, для будущих — '
    'свободные сейчас. Прошлая, текущая неделя и недели в горизонте выгрузки '
    'пересчитываются при каждом обновлении.';
comment on column report.doctor_demand.week is
    'Неделя: дата понедельника (неделя заявки по времени клиники; неделя слота — по времени '
    'его филиала).';
comment on column report.doctor_demand.doctor_id is 'Врач (clinic.doctors.doctor_id).';
comment on column report.doctor_demand.leads is
    'Заявок за неделю, в которых пациент выбрал этого врача (без спама).';
comment on column report.doctor_demand.free_slots is
    'Свободных слотов у врача на этой неделе (0 — нет или врач не выгружается на ПроДокторов).';
comment on column report.doctor_demand.leads_per_free_slot is
    'Заявок на один свободный слот (leads / free_slots); пусто — свободных слотов нет.';
