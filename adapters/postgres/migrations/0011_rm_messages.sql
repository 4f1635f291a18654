-- Read model "messages": the status of each outbound WhatsApp message and each
-- inbound one (message_id 'inbound:<provider id>'), findable by patient.
CREATE TABLE IF NOT EXISTS rm_messages (
    clinic_id           text        NOT NULL,
    message_id          text        NOT NULL,
    direction           text        NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    patient_id          text,
    phone               text,
    template_name       text,
    language            text,
    category            text,
    status              text        NOT NULL,
    provider_message_id text,
    error_code          text,
    error_message       text,
    queued_at           timestamptz,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    received_at         timestamptz,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, message_id)
);

CREATE INDEX IF NOT EXISTS rm_messages_patient_idx
    ON rm_messages (clinic_id, patient_id, updated_at DESC);
