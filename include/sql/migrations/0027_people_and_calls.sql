-- People, new versus returning patients and calls in the reports (issue 20, "Reports").
-- ident_hooks.reports: facts.py decides each lead's person, whether it is a call and
-- whether its patient had come before; tables.py builds the two tables below. The next
-- build is a full one (the build's SQL changed), which fills the new columns.

-- The front desk's choice of a card decides who a lead's person is: a change is noted
-- like a change of the lead itself.
create trigger lead_patient_choices_noted_for_reports_on_insert
    after insert on integration.lead_patient_choices
    referencing new table as changed_leads
    for each statement execute function report_build.note_changed_leads();
create trigger lead_patient_choices_noted_for_reports_on_update
    after update on integration.lead_patient_choices
    referencing new table as changed_leads
    for each statement execute function report_build.note_changed_leads();
create trigger lead_patient_choices_noted_for_reports_on_delete
    after delete on integration.lead_patient_choices
    referencing old table as changed_leads
    for each statement execute function report_build.note_changed_leads();

alter table report_build.appointment_phones add column patient_id text;
comment on column report_build.appointment_phones.patient_id is
    'Пациент записи (clinic.appointments.patient_id); пусто — МИС не указала.';

alter table report_build.lead_facts
    add column person_key   text,
    add column is_call      boolean not null default false,
    add column is_returning boolean not null default false;
comment on column report_build.lead_facts.person_key is
    'Человек заявки: card:<карта>, подтверждённая администратором (или единственная карта, '
    'подтверждённая для заявок этого телефона), иначе phone:<телефон>, без телефона lead:<id>.';
comment on column report_build.lead_facts.is_call is
    'Звонок: заявка из уведомления UIS о звонке.';
comment on column report_build.lead_facts.is_returning is
    'Пациент уже приходил: до заявки был состоявшийся приём его карты (без карты — телефона).';

create table report.patients_by_channel (
    week               date not null,
    channel            text not null,
    utm_campaign       text,
    leads              int not null,
    people             int not null,
    leads_per_person   numeric(8, 2) not null,
    new_patients       int not null,
    returning_patients int not null,
    constraint patients_by_channel_one_row unique nulls not distinct (week, channel, utm_campaign)
);
comment on table report.patients_by_channel is
    'Новые и вернувшиеся пациенты по неделям, каналам и кампаниям: заявки, люди, заявок на '
    'человека. Человек — одна подтверждённая карта пациента, иначе один телефон. '
    'Заявки, отмеченные как спам, не считаются.';
comment on column report.patients_by_channel.week is 'Понедельник недели заявок (время клиники).';
comment on column report.patients_by_channel.channel is 'Маркетинговый канал.';
comment on column report.patients_by_channel.utm_campaign is 'Метка utm_campaign; пусто — без кампании.';
comment on column report.patients_by_channel.leads is 'Заявки (не спам).';
comment on column report.patients_by_channel.people is 'Разные люди среди них.';
comment on column report.patients_by_channel.leads_per_person is 'Заявок на человека, leads / people.';
comment on column report.patients_by_channel.new_patients is
    'Люди, у которых до заявки не было состоявшегося приёма: новые пациенты.';
comment on column report.patients_by_channel.returning_patients is
    'Люди, у которых до заявки был состоявшийся приём: вернувшиеся пациенты.';

create table report.calls_daily (
    day     date not null,
    channel text not null,
    calls   int not null,
    callers int not null,
    primary key (day, channel)
);
comment on table report.calls_daily is
    'Звонки по дням и каналам: канал звонка — по номеру, на который звонили '
    '(numbers в marketing_channels.yaml), иначе по общим правилам. Спам не считается.';
comment on column report.calls_daily.day is 'День звонка (время клиники).';
comment on column report.calls_daily.channel is 'Маркетинговый канал.';
comment on column report.calls_daily.calls is 'Звонки (не спам).';
comment on column report.calls_daily.callers is 'Разные люди среди звонивших.';
