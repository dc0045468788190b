-- Integer aliases of the clinic's text ids for the IDENT HTTP protocol (СберЗдоровье,
-- 32top). IDENT's ids are integers ("Id": 2129, "BranchId": 1) and partner receivers
-- refuse anything else (brearey/smmikod, src/index.ts: 400 unless typeof Id === 'number';
-- its tables keep them as INT). An alias is assigned once, the first time the schedule
-- reader sees the doctor or branch, and is never changed or reused: a partner keeps what
-- it was sent under that number. There is deliberately no foreign key to clinic.*: a
-- doctor deleted from the clinic keeps the number, so it never comes back as someone else.

create table integration.ident_ids (
    entity    text not null
              constraint ident_ids_entity_known check (entity in ('doctor', 'branch')),
    clinic_id text not null,                 -- clinic.doctors.doctor_id / clinic.branches.branch_id
    ident_id  bigint generated always as identity (maxvalue 2147483647) unique,
    assigned_at timestamptz not null default now(),
    primary key (entity, clinic_id)
);
