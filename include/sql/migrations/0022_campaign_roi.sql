-- What a campaign's leads earned against what it cost (issue 19, "Reports"): visits, new
-- patients and revenue per lead, and per week and campaign the costs of report.ad_costs
-- beside them (ident_hooks.reports: facts.py decides the visits, tables.py the table).

-- The build's copy of the appointments also follows what makes a visit: a completed
-- appointment, when it started and what it earned. The next build is a full one (the
-- build's SQL changed), which refills the copy.
alter table report_build.appointment_phones
    add column starts_at    timestamptz,
    add column is_completed boolean not null default false,
    add column amount       numeric(12, 2);
create index appointment_phones_visits on report_build.appointment_phones
    (phone_e164, starts_at) where is_completed;
comment on column report_build.appointment_phones.starts_at is 'Начало приёма.';
comment on column report_build.appointment_phones.is_completed is
    'Приём состоялся (status = completed): пациент пришёл.';
comment on column report_build.appointment_phones.amount is 'Сумма приёма; пусто — неизвестна.';

alter table report_build.lead_facts
    add column visit_id     text,
    add column visit_is_new boolean not null default false,
    add column visit_amount numeric(12, 2);
comment on column report_build.lead_facts.visit_id is
    'Визит заявки: первый состоявшийся приём с этого телефона, начавшийся в течение 30 дней '
    'после заявки, если она — последняя заявка (не спам) телефона перед ним '
    '(clinic.appointments.appointment_id); пусто — визита нет.';
comment on column report_build.lead_facts.visit_is_new is
    'Визит — первый состоявшийся приём этого телефона: пришёл новый пациент.';
comment on column report_build.lead_facts.visit_amount is 'Сумма визита; пусто — неизвестна.';

-- Rebuilt whole when a lead's facts or the ad costs changed: it has one row per week and
-- campaign, few enough; a re-import leaves no trace of what it replaced, so the build
-- compares a digest of the costs.
alter table report.build_state add column ad_costs_digest text;
comment on column report.build_state.ad_costs_digest is
    'Отпечаток report.ad_costs при последней сборке: изменились расходы — '
    'report.campaign_roi пересчитывается.';

create table report.campaign_roi (
    week                  date not null,
    cost_source           text,
    campaign_id           bigint,
    campaign              text not null,
    utm_source            text,
    channel               text,
    impressions           bigint not null,
    clicks                bigint not null,
    cost                  numeric(18, 2) not null,
    leads                 int not null,
    visits                int not null,
    new_patients          int not null,
    revenue               numeric(18, 2) not null,
    visits_without_amount int not null,
    cost_per_lead         numeric(18, 2),
    cost_per_visit        numeric(18, 2),
    cost_per_new_patient  numeric(18, 2),
    romi                  numeric(12, 4),
    constraint campaign_roi_one_row_per_campaign unique nulls not distinct
        (week, cost_source, campaign_id, campaign)
);
comment on table report.campaign_roi is
    'Окупаемость рекламы по неделям и кампаниям: расход (report.ad_costs), заявки, визиты, '
    'новые пациенты и выручка от заявок недели, стоимость заявки, визита и нового пациента, '
    'ROMI. Заявка относится к кампании, если её utm_campaign — название кампании или её номер. '
    'Есть строки и для кампаний с расходом без заявок, и для заявок без данных о расходе. '
    'Заявки, отмеченные как спам, не считаются.';
comment on column report.campaign_roi.week is
    'Понедельник недели: недели заявок (по времени клиники) и дней расхода.';
comment on column report.campaign_roi.cost_source is
    'Источник расходов (кабинет площадки); пусто — расходы этой кампании не загружены.';
comment on column report.campaign_roi.campaign_id is 'Номер кампании на площадке; пусто — не известен.';
comment on column report.campaign_roi.campaign is
    'Название кампании на площадке (последнее), а без данных о расходе — utm_campaign заявок.';
comment on column report.campaign_roi.utm_source is
    'Самый частый utm_source заявок кампании за неделю; пусто — заявок нет.';
comment on column report.campaign_roi.channel is
    'Самый частый канал заявок кампании за неделю; пусто — заявок нет.';
comment on column report.campaign_roi.impressions is 'Показы за неделю.';
comment on column report.campaign_roi.clicks is 'Клики за неделю.';
comment on column report.campaign_roi.cost is 'Расход за неделю в валюте кабинета (0 — нет данных).';
comment on column report.campaign_roi.leads is 'Заявок за неделю (без спама).';
comment on column report.campaign_roi.visits is
    'Из них пришли на приём: визит в течение 30 дней после заявки (по свежим неделям ещё растёт).';
comment on column report.campaign_roi.new_patients is
    'Из визитов — первые состоявшиеся приёмы телефона (новые пациенты).';
comment on column report.campaign_roi.revenue is 'Выручка визитов (визиты без суммы — как 0).';
comment on column report.campaign_roi.visits_without_amount is
    'Визитов без суммы: выручка без них занижена.';
comment on column report.campaign_roi.cost_per_lead is
    'Стоимость заявки: cost / leads; пусто — нет заявок или данных о расходе.';
comment on column report.campaign_roi.cost_per_visit is
    'Стоимость визита: cost / visits; пусто — нет визитов или данных о расходе.';
comment on column report.campaign_roi.cost_per_new_patient is
    'Стоимость нового пациента: cost / new_patients; пусто — нет новых пациентов или данных о расходе.';
comment on column report.campaign_roi.romi is
    'ROMI: (revenue - cost) / cost, 4 знака (0,5 — выручка на 50 % больше расхода); пусто — расход 0.';
