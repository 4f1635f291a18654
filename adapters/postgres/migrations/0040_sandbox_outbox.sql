-- WhatsApp sandbox outbox: messages the development transport recorded instead of
-- sending (adapters.whatsapp.SandboxWhatsAppTransport). One row per idempotency key.
CREATE TABLE IF NOT EXISTS whatsapp_sandbox_outbox (
    id                bigserial   PRIMARY KEY,
    message_id        text        NOT NULL UNIQUE,
    idempotency_key   text        NOT NULL UNIQUE,
    clinic_id         text,
    recipient         text        NOT NULL,
    message_type      text        NOT NULL CHECK (message_type IN ('text', 'template')),
    template_name     text,
    template_language text,
    template_params   text[]      NOT NULL DEFAULT '{}',
    body              text,
    payload           jsonb       NOT NULL,
    sent_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((message_type = 'text') = (body IS NOT NULL)),
    CHECK ((message_type = 'template') = (template_name IS NOT NULL))
);

CREATE INDEX IF NOT EXISTS whatsapp_sandbox_outbox_clinic_sent_idx
    ON whatsapp_sandbox_outbox (clinic_id, sent_at DESC);
