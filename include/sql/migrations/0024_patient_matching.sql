-- Matching leads to patient cards (issue 20; docs/patients.md). The clinic's sync writes
-- cards and phones at any time and types phones any way; matching needs them in E.164. The
-- phones are normalised by the same code as the leads' (phonenumbers) into an index kept on
-- the integration side, so matching a lead is an indexed lookup. Changed cards are noted by
-- statement-level triggers; the match_patients DAG refreshes the index for them and
-- re-matches the leads they touch.

create table integration.patient_phone_index (
    phone_e164 text not null,           -- +79161234567, as integration.leads.phone_e164
    patient_id text not null,
    primary key (phone_e164, patient_id)
);
create index patient_phone_index_patient on integration.patient_phone_index (patient_id);
comment on table integration.patient_phone_index is
    'Телефоны карт пациентов в формате E.164 (для сопоставления заявок с картами).';

-- A close name is looked for only among cards with the lead's e-mail.
create index patients_email on clinic.patients (lower(btrim(email)))
    where email is not null and btrim(email) <> '';

-- Cards changed since the last re-match; patient_id null means every card (a truncate).
create table integration.patient_changes (
    change_id  bigint generated always as identity primary key,
    patient_id text,
    noted_at   timestamptz not null default now()
);
comment on table integration.patient_changes is
    'Карты пациентов, изменённые после последнего пересопоставления заявок.';

create function integration.note_patient_changes() returns trigger
    language plpgsql
as $$
begin
    if tg_op = 'TRUNCATE' then
        insert into integration.patient_changes (patient_id) values (null);
        return null;
    end if;
    -- Transition tables exist only for the events that have them.
    if tg_op in ('INSERT', 'UPDATE') then
        insert into integration.patient_changes (patient_id)
        select distinct patient_id from new_rows;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        insert into integration.patient_changes (patient_id)
        select distinct patient_id from old_rows;
    end if;
    return null;
end
$$;

create trigger patients_inserted after insert on clinic.patients
    referencing new table as new_rows
    for each statement execute function integration.note_patient_changes();
create trigger patients_updated after update on clinic.patients
    referencing old table as old_rows new table as new_rows
    for each statement execute function integration.note_patient_changes();
create trigger patients_deleted after delete on clinic.patients
    referencing old table as old_rows
    for each statement execute function integration.note_patient_changes();
create trigger patients_truncated after truncate on clinic.patients
    for each statement execute function integration.note_patient_changes();

create trigger patient_phones_inserted after insert on clinic.patient_phones
    referencing new table as new_rows
    for each statement execute function integration.note_patient_changes();
create trigger patient_phones_updated after update on clinic.patient_phones
    referencing old table as old_rows new table as new_rows
    for each statement execute function integration.note_patient_changes();
create trigger patient_phones_deleted after delete on clinic.patient_phones
    referencing old table as old_rows
    for each statement execute function integration.note_patient_changes();
create trigger patient_phones_truncated after truncate on clinic.patient_phones
    for each statement execute function integration.note_patient_changes();

-- Cards already in the database are indexed by the first run.
insert into integration.patient_changes (patient_id) values (null);
