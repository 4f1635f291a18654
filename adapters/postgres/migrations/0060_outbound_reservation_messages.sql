-- Outbound limits (adapters.cooldowns): a reservation belongs to the message it was made
-- for, once. A retried command for the same message (same idempotency key, same message
-- id) finds its first reservation instead of being counted again, or refused by the
-- cooldown that first attempt reserved. Reservations made without a message id (NULL)
-- stay independent, as before.
ALTER TABLE outbound_reservations ADD COLUMN IF NOT EXISTS message_id text;

CREATE UNIQUE INDEX IF NOT EXISTS outbound_reservations_message_idx
    ON outbound_reservations (clinic_id, message_id) WHERE message_id IS NOT NULL;
