-- Read model "consents": the current decision per patient and consent type, with the
-- proof GDPR Art. 7 asks for (source, IP address, time, event position).
CREATE TABLE IF NOT EXISTS rm_consents (
    clinic_id      text        NOT NULL,
    patient_id     text        NOT NULL,
    consent_type   text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('granted', 'denied', 'withdrawn')),
    phone          text,
    policy_version text        NOT NULL,
    decided_at     timestamptz,
    expires_at     timestamptz,
    source         text        NOT NULL,
    ip_address     text,
    event_position bigint      NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, patient_id, consent_type)
);

CREATE INDEX IF NOT EXISTS rm_consents_phone_idx ON rm_consents (clinic_id, phone);
