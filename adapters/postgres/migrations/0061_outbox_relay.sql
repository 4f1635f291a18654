-- The outbox relay (adapters.outbox_relay): every queued WhatsApp message gets exactly one
-- delivery workflow, even when Temporal was unreachable at the moment it was queued.
--
-- outbox_relay_checkpoint: how far the relay has read the event log (global position,
-- below the same visibility barrier projections use); moved in the transaction that
-- applies what it read, after checking it still holds the position the batch began at.
CREATE TABLE IF NOT EXISTS outbox_relay_checkpoint (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- outbox_pending: one row per outbound message between WhatsAppMessageQueued and its
-- outcome (Sent, Delivered or a permanent Failed). ``check_at`` is when the relay next
-- looks at it (the grace period first, then a back-off while someone delivers it).
CREATE TABLE IF NOT EXISTS outbox_pending (
    clinic_id       text        NOT NULL,
    message_id      text        NOT NULL,
    queued_at       timestamptz NOT NULL,
    queued_position bigint      NOT NULL,
    correlation_id  text,
    check_at        timestamptz NOT NULL,
    checks          integer     NOT NULL DEFAULT 0,
    relayed_at      timestamptz,
    PRIMARY KEY (clinic_id, message_id)
);

CREATE INDEX IF NOT EXISTS outbox_pending_check_idx ON outbox_pending (check_at);

-- outbox_owners: a message queued by an activity belongs to that activity's workflow,
-- which delivers it (or starts its delivery) itself; the relay leaves it alone while
-- that workflow runs. Recorded before the message is queued, first owner wins.
CREATE TABLE IF NOT EXISTS outbox_owners (
    clinic_id    text        NOT NULL,
    message_id   text        NOT NULL,
    workflow_id  text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, message_id)
);

CREATE INDEX IF NOT EXISTS outbox_owners_recorded_idx ON outbox_owners (recorded_at);
