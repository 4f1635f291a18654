-- Outbound WhatsApp limits (adapters.cooldowns), checked and recorded atomically by
-- the send path before a message goes out. Recipients are keyed by a pseudonym
-- (keyed hash of the phone, see adapters.cooldowns.recipient_key): no phone numbers.
--
-- template_cooldowns: per (clinic, recipient, template) when the template may next
-- be sent. A reservation is one INSERT ... ON CONFLICT DO UPDATE ... WHERE the
-- cooldown has passed, so two concurrent sends of one template to one person
-- cannot both win: the loser finds the winner's row (locked, then re-checked).
CREATE TABLE IF NOT EXISTS template_cooldowns (
    clinic_id      text        NOT NULL,
    recipient_key  text        NOT NULL,
    template_name  text        NOT NULL,
    reserved_at    timestamptz NOT NULL,
    available_at   timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, recipient_key, template_name),
    CHECK (available_at >= reserved_at)
);

-- outbound_message_counts: messages reserved per (clinic, recipient, clinic-local day);
-- the counter only grows while it is below the limit (same single-statement check).
CREATE TABLE IF NOT EXISTS outbound_message_counts (
    clinic_id      text        NOT NULL,
    recipient_key  text        NOT NULL,
    day            date        NOT NULL,
    sent           integer     NOT NULL CHECK (sent >= 0),
    PRIMARY KEY (clinic_id, recipient_key, day)
);

-- outbound_reservations: one row per reservation, so ``release`` undoes exactly the
-- reservation it names, once (a repeated release finds no row and changes nothing).
CREATE TABLE IF NOT EXISTS outbound_reservations (
    id             bigserial   PRIMARY KEY,
    clinic_id      text        NOT NULL,
    recipient_key  text        NOT NULL,
    template_name  text,
    day            date        NOT NULL,
    reserved_at    timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS outbound_reservations_day_idx ON outbound_reservations (day);
CREATE INDEX IF NOT EXISTS template_cooldowns_available_idx
    ON template_cooldowns (available_at);
CREATE INDEX IF NOT EXISTS outbound_message_counts_day_idx
    ON outbound_message_counts (day);
