-- Read model "clinics": each clinic's configuration and doctors.
CREATE TABLE IF NOT EXISTS rm_clinics (
    clinic_id    text        PRIMARY KEY,
    name         text        NOT NULL,
    timezone     text        NOT NULL,
    slot_times   jsonb       NOT NULL,
    working_days jsonb       NOT NULL,
    location     text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS rm_doctors (
    clinic_id text        NOT NULL,
    doctor_id text        NOT NULL,
    name      text        NOT NULL,
    services  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    added_at  timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, doctor_id)
);
