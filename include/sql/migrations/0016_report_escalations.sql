-- Escalated leads in the report tables (issue 13): per clinic day and branch, how many
-- leads nobody took in time were escalated to the front desk, and how long they had
-- waited. From integration.lead_escalations (0014); rebuilt in full by every report build.

create table report.escalations (
    day                 date not null,
    branch_id           text not null,  -- '' for leads without a branch (the default desk)
    escalated           int not null,
    median_wait_minutes numeric,
    primary key (day, branch_id)
);

comment on table report.escalations is
    'Заявки, не взятые в работу вовремя и переданные ресепшну как срочные, по дням и филиалам.';
comment on column report.escalations.day is 'День эскалации по времени клиники.';
comment on column report.escalations.branch_id is 'Филиал заявки (пусто — без филиала).';
comment on column report.escalations.escalated is 'Сколько заявок эскалировано.';
comment on column report.escalations.median_wait_minutes is
    'Медиана: сколько минут заявка ждала до эскалации.';
