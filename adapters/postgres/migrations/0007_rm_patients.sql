-- Read model "patients": the current profile (personal fields emptied on erasure).
CREATE TABLE IF NOT EXISTS rm_patients (
    clinic_id     text        NOT NULL,
    patient_id    text        NOT NULL,
    first_name    text,
    last_name     text,
    phone         text,
    email         text,
    date_of_birth date,
    notes         text,
    tags          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    lead_id       text,
    erased        boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, patient_id)
);

CREATE INDEX IF NOT EXISTS rm_patients_phone_idx ON rm_patients (clinic_id, phone);
CREATE INDEX IF NOT EXISTS rm_patients_email_idx ON rm_patients (clinic_id, lower(email));
