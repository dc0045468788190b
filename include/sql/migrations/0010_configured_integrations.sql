-- Integration names live in one place, include/integrations.yaml over the code's registry of
-- kinds; the database no longer lists them. A second landing page or another IDENT partner
-- is a YAML entry and an Airflow connection, with no migration.

-- Export settings are keyed by the configured aggregator's name; a row for a name that is not
-- configured is simply not used (the publish DAGs exist only for configured ones).
alter table clinic.export_settings drop constraint export_settings_known_aggregator;
alter table clinic.export_rules drop constraint export_rules_known_aggregator;

-- The configured integrations and the labels staff see, written from integrations.yaml by the
-- migration commands and by every pull and publish run. Rows of integrations removed from the
-- file stay, so older leads keep their label.
create table integration.integrations (
    role       text not null check (role in ('aggregator', 'lead_source')),
    name       text not null,
    kind       text not null,
    title      text not null,
    updated_at timestamptz not null default now(),
    primary key (role, name)
);

comment on table integration.integrations is
    'Интеграции из include/integrations.yaml: агрегаторы расписания и источники заявок, '
    'их протокол (kind) и название для сотрудников клиники.';

-- How staff name a lead source: its configured title, else the source's own name.
create or replace function integration.lead_source_label(source text) returns text
    language sql stable parallel safe
as $$
    select coalesce(
        (select title from integration.integrations
          where role = 'lead_source' and name = source),
        source
    )
$$;
