-- Click ids on every lead that carries them (issue 19): Metrica's ClientID and the ad click
-- ids yclid (Yandex Direct) and gclid (Google Ads), which tie a lead to the visit and the ad
-- that brought it, so that Metrica offline conversions can be matched (marketing-apis.md A,
-- D). Written by the leads store for pulled and pushed leads alike; never shown to staff
-- (the inbox reads integration.open_leads, which does not list them).

alter table integration.leads
    add column ym_client_id text,
    add column yclid        text,
    add column gclid        text,
    -- ident_hooks.leads.normalise.metrica_client_id drops anything else before it gets here.
    add constraint lead_ym_client_id_digits check (ym_client_id ~ '^[1-9][0-9]{9,19}$');

comment on column integration.leads.ym_client_id is
    'Yandex Metrica ClientID of the visitor (the _ym_uid cookie): 10-20 digits; null when the '
    'source sent none or a value that is not a plausible id.';
comment on column integration.leads.yclid is
    'Yandex Direct click id: the source''s own field, else the landing URL''s yclid parameter.';
comment on column integration.leads.gclid is
    'Google Ads click id: the source''s own field, else the landing URL''s gclid parameter.';

-- The facts the reports count (0005): which click ids a lead has.
alter table report_build.lead_facts
    add column has_ym_client_id boolean not null default false,
    add column has_yclid        boolean not null default false,
    add column has_gclid        boolean not null default false;

comment on column report_build.lead_facts.has_ym_client_id is 'У заявки есть ClientID Метрики.';
comment on column report_build.lead_facts.has_yclid is 'У заявки есть yclid (Яндекс Директ).';
comment on column report_build.lead_facts.has_gclid is 'У заявки есть gclid (Google Ads).';

-- Per clinic day and source: how many leads carry each click id. Rebuilt for the touched
-- days like report.leads_daily (ident_hooks.reports.tables).
create table report.click_ids (
    day               date not null,
    source            text not null,
    leads             int not null,
    with_ym_client_id int not null,
    with_yclid        int not null,
    with_gclid        int not null,
    with_any          int not null,
    any_share         numeric not null,
    primary key (day, source)
);

comment on table report.click_ids is
    'Заявки с идентификаторами визита и клика по дням и источникам: сколько заявок несут '
    'ClientID Метрики, yclid, gclid. Без них заявку нельзя связать с визитом и рекламой для '
    'офлайн-конверсий. Заявки, отмеченные как спам, не считаются.';
comment on column report.click_ids.day is 'День создания заявки по времени клиники.';
comment on column report.click_ids.source is
    'Откуда загружена заявка (как в report.leads_daily.source).';
comment on column report.click_ids.leads is 'Заявок (без спама).';
comment on column report.click_ids.with_ym_client_id is 'Из них с ClientID Метрики.';
comment on column report.click_ids.with_yclid is 'Из них с yclid (клик в Яндекс Директе).';
comment on column report.click_ids.with_gclid is 'Из них с gclid (клик в Google Ads).';
comment on column report.click_ids.with_any is 'Из них хотя бы с одним из трёх.';
comment on column report.click_ids.any_share is
    'Доля заявок хотя бы с одним идентификатором: with_any / leads, 4 знака. За период: '
    'сумма with_any / сумма leads.';
