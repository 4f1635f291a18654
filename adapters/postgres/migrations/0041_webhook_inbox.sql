-- Webhook inbox (adapters.webhook_inbox): one row per webhook item already handled,
-- so a redelivered webhook (providers retry on any non-2xx, and sometimes anyway)
-- is answered without running anything again. Items are keyed by what the provider
-- identifies them with: 'message:<provider message id>' for an inbound message,
-- 'status:<provider message id>:<status>' for a delivery status.
--
-- No personal data: ``detail`` holds outcome codes and the CRM's own ids only
-- (message, lead, patient, workflow ids), never phones or texts.
CREATE TABLE IF NOT EXISTS webhook_inbox (
    provider      text        NOT NULL,
    clinic_id     text        NOT NULL,
    item_key      text        NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('processed', 'ignored')),
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, clinic_id, item_key)
);

CREATE INDEX IF NOT EXISTS webhook_inbox_processed_idx ON webhook_inbox (processed_at);

-- Delivery statuses name a message by the provider's id: find it in the messages read
-- model (adapters.webhook_inbox.ReadModelProviderMessages) without a scan.
CREATE INDEX IF NOT EXISTS rm_messages_provider_idx
    ON rm_messages (clinic_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
