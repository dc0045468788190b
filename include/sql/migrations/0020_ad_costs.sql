-- Daily ad costs per cost source, day and campaign (issue 19, "Ad costs in"), imported by
-- the import_ad_costs_<source> DAGs from the advertising platforms' reports. An import
-- replaces every row of its days for its source in one transaction, so importing a day
-- twice leaves the same rows. Campaign names join the leads' utm_campaign where the
-- campaigns are tagged with their own names.

create table report.ad_costs (
    source        text not null,    -- the cost source's name in include/integrations.yaml
    day           date not null,    -- the platform's day (the account's time zone)
    campaign_id   bigint not null,
    campaign      text not null,    -- its name on the platform
    impressions   bigint not null check (impressions >= 0),
    clicks        bigint not null check (clicks >= 0),
    cost          numeric(18, 2) not null check (cost >= 0),
    currency      text,              -- null: the account's currency, not given by the report
    vat_included  boolean not null,
    imported_at   timestamptz not null default now(),
    primary key (source, day, campaign_id)
);

comment on table report.ad_costs is
    'Расходы на рекламу по дням и кампаниям, из отчётов рекламных площадок.';
comment on column report.ad_costs.source is 'Источник расходов (кабинет площадки).';
comment on column report.ad_costs.day is 'День статистики площадки.';
comment on column report.ad_costs.campaign_id is 'Номер кампании на площадке.';
comment on column report.ad_costs.campaign is 'Название кампании на площадке.';
comment on column report.ad_costs.impressions is 'Показы.';
comment on column report.ad_costs.clicks is 'Клики.';
comment on column report.ad_costs.cost is 'Расход в валюте кабинета.';
comment on column report.ad_costs.currency is 'Валюта, если площадка её сообщает.';
comment on column report.ad_costs.vat_included is 'Расход с НДС.';
comment on column report.ad_costs.imported_at is 'Когда день загружен последний раз.';
