-- Leads (заявки) pulled from websites, landing pages, call tracking and aggregators.
-- Our own tables live in schema `integration`; the clinic's contract stays in `clinic`.

create schema if not exists integration;

create table integration.leads (
    lead_id          bigint generated always as identity primary key,
    source           text not null,            -- uis, flexbe, napopravku, 32top, site_<name>
    external_id      text not null,            -- the lead's id at the source
    created_at       timestamptz not null,     -- when the source says it was created
    loaded_at        timestamptz not null default now(),  -- first stored here
    source_updated_at timestamptz not null default now(), -- last changed by the source
    name             text,
    phone_raw        text,                     -- as received
    phone_e164       text,                     -- +79161234567, null when not a valid number
    email            text,
    comment          text,
    form_name        text,
    doctor_id        text,                     -- matched to clinic.doctors, else null
    doctor_name_raw  text,                     -- the doctor as the source named them
    requested_start  timestamptz,
    requested_end    timestamptz,
    branch_id        text,
    utm_source       text,
    utm_medium       text,
    utm_campaign     text,
    utm_term         text,
    utm_content      text,
    referrer         text,
    referrer_host    text,
    landing_url      text,
    raw              jsonb not null,           -- the record exactly as the source sent it
    status           text not null default 'new'
                     constraint lead_status_known check (status in ('new', 'in_progress', 'done', 'spam')),
    -- Sources that cancel unacknowledged bookings (НаПоправку) are told after commit.
    ack_required     boolean not null default false,
    acknowledged_at  timestamptz,
    ack_error        text,                     -- the source refused the acknowledgement
    constraint lead_identity unique (source, external_id),
    constraint lead_requested_time_ordered
        check (requested_end is null or requested_start is null or requested_end > requested_start)
);
create index leads_created on integration.leads (created_at);
create index leads_open_by_doctor on integration.leads (doctor_id, requested_start)
    where status in ('new', 'in_progress') and doctor_id is not null;
create index leads_phone on integration.leads (phone_e164, created_at);
create index leads_pending_ack on integration.leads (source)
    where ack_required and acknowledged_at is null and ack_error is null;

-- Records a source sent that could not be stored as leads, with the reason.
-- The same bad record seen again (overlapping periods) bumps its counter.
create table integration.lead_rejects (
    reject_id     bigint generated always as identity primary key,
    source        text not null,
    external_id   text,
    reason        text not null,
    raw           text not null,
    raw_hash      text generated always as (md5(raw)) stored,
    first_seen_at timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    times_seen    int not null default 1,
    constraint lead_reject_identity unique (source, raw_hash)
);
