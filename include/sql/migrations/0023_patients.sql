-- Knowing the patient (issue 20). The clinic contract gains patient cards, written by the
-- clinic's sync like the rest of the contract; optional: without cards everything works as
-- before. The integration side keeps what matching found and what the front desk chose;
-- matching never writes to the cards.

create table clinic.patients (
    patient_id text primary key check (patient_id <> ''),
    full_name  text not null,          -- «Фамилия Имя Отчество» as the card has it
    birth_date date,
    email      text,
    -- IDENT links patients into families; cards of one family share this id.
    family_id  text
);
comment on table clinic.patients is 'Карты пациентов клиники (из МИС).';

-- One phone may belong to several patients (a family's shared number), and a patient may
-- have several phones. Phones as the clinic's system keeps them (typed any way).
create table clinic.patient_phones (
    patient_id text not null references clinic.patients (patient_id) on delete cascade,
    phone      text not null check (phone <> ''),
    primary key (patient_id, phone)
);
create index patient_phones_phone on clinic.patient_phones (phone);
comment on table clinic.patient_phones is 'Телефоны пациентов; один номер может быть у нескольких.';

alter table clinic.appointments
    add column patient_id text references clinic.patients (patient_id) on delete set null;
create index appointments_patient on clinic.appointments (patient_id, starts_at)
    where patient_id is not null;
comment on column clinic.appointments.patient_id is 'Пациент записи, если МИС его указывает.';

-- What matching found for each lead: every card the lead may be, graded.
--   certain  — the phone and the name agree with one card;
--   probable — the phone is the phone of exactly one card (the name does not confirm it);
--   possible — the phone is shared by several cards (a family), or only a close name.
create table integration.lead_patient_matches (
    lead_id    bigint not null,     -- integration.leads.lead_id
    patient_id text not null,
    grade      text not null constraint lead_patient_match_grade_known
               check (grade in ('certain', 'probable', 'possible')),
    reason     text not null,
    matched_at timestamptz not null default now(),
    primary key (lead_id, patient_id)
);
create index lead_patient_matches_patient on integration.lead_patient_matches (patient_id);
comment on table integration.lead_patient_matches is
    'Какие карты пациентов подходят к заявке (или звонку), с уверенностью.';

-- The front desk's choice for a lead, kept whatever matching finds later: a card, or
-- none of them (patient_id null: "a new patient").
create table integration.lead_patient_choices (
    lead_id    bigint primary key,  -- integration.leads.lead_id
    patient_id text,
    chosen_by  text not null,
    chosen_at  timestamptz not null default now()
);
comment on table integration.lead_patient_choices is
    'Карта пациента, которую администратор подтвердил для заявки (пусто — новый пациент).';

-- Freed time offered to those waiting: when a cancellation frees a doctor's time, each open
-- lead that asked for that doctor (or that specialty) on nearby days gets a row here, and
-- the inbox shows the slot on the lead.
create table integration.lead_freed_slots (
    lead_id        bigint not null,     -- integration.leads.lead_id
    appointment_id text not null,       -- the cancelled appointment whose time was freed
    doctor_id      text not null,
    branch_id      text,
    starts_at      timestamptz not null,
    ends_at        timestamptz not null,
    flagged_at     timestamptz not null default now(),
    primary key (lead_id, appointment_id)
);
comment on table integration.lead_freed_slots is
    'Освободившееся после отмены время, предложенное ожидающим заявкам (тот же врач или специальность).';

-- What is kept per lead goes with the lead. Not foreign keys: those would make every
-- `truncate integration.leads` (a reset the docs and tools use) fail unless it names these
-- tables too; statement-level triggers follow deletes and truncates instead.
create function integration.forget_deleted_leads() returns trigger
language plpgsql as $$
begin
    delete from integration.lead_patient_matches m using deleted_leads d where m.lead_id = d.lead_id;
    delete from integration.lead_patient_choices c using deleted_leads d where c.lead_id = d.lead_id;
    delete from integration.lead_freed_slots f using deleted_leads d where f.lead_id = d.lead_id;
    return null;
end;
$$;
create trigger leads_deleted_forget_patient_rows
    after delete on integration.leads
    referencing old table as deleted_leads
    for each statement execute function integration.forget_deleted_leads();

create function integration.forget_all_leads() returns trigger
language plpgsql as $$
begin
    -- delete, not truncate: the statement that emptied the leads may name these tables
    -- too, and a table cannot be truncated while that statement still uses it.
    delete from integration.lead_patient_matches;
    delete from integration.lead_patient_choices;
    delete from integration.lead_freed_slots;
    return null;
end;
$$;
create trigger leads_truncated_forget_patient_rows
    after truncate on integration.leads
    for each statement execute function integration.forget_all_leads();
