-- Read model "leads": one row per lead. The lead id is the clinic's pseudonym of the
-- lead's phone, so a lookup by phone is a lookup by id.
CREATE TABLE IF NOT EXISTS rm_leads (
    clinic_id          text        NOT NULL,
    lead_id            text        NOT NULL,
    phone              text,
    channel            text,
    source             text,
    utm                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status             text        NOT NULL,
    score              integer,
    classification     text,
    confidence         double precision,
    suggested_action   text,
    procedure_interest text,
    qualified_as       text,
    assignee           text,
    patient_id         text,
    lost_reason        text,
    created_at         timestamptz,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, lead_id)
);

CREATE INDEX IF NOT EXISTS rm_leads_clinic_status_idx ON rm_leads (clinic_id, status);
