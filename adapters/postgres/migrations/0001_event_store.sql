-- The event store: one append-only table for every clinic's events, the idempotency
-- keys of appends and commands, and aggregate snapshots.
--
-- Global positions are derived from the appending transaction's id:
--     global_position = xid8 * 65536 + n     (n = 1, 2, ... within the transaction)
-- (mc_append_events, 0002). Positions therefore grow with transaction ids, with gaps,
-- and "position < oldest in-flight xid * 65536" is a visibility barrier: every row
-- below it belongs to a finished transaction, so a reader of the global order that
-- stops at the barrier never skips an event that commits later with a lower position
-- (PostgresEventStore.read_all). No sequence, no lock: appends commit concurrently.

CREATE TABLE IF NOT EXISTS events (
    global_position bigint      PRIMARY KEY,
    clinic_id       text        NOT NULL,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1 CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key text,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (clinic_id, stream_id, version)
);

COMMENT ON COLUMN events.global_position IS
    'xid8 of the appending transaction * 65536 + rank within it; readers of the global '
    'order take rows below pg_snapshot_xmin(pg_current_snapshot()) * 65536 only.';

-- Events are facts: never updated or deleted (GDPR erasure shreds keys, not rows).
CREATE OR REPLACE FUNCTION events_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP
        USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

DROP TRIGGER IF EXISTS events_no_update_delete ON events;
CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

DROP TRIGGER IF EXISTS events_no_truncate ON events;
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- One row per (clinic, idempotency key): what the key is bound to (a fingerprint of
-- the append or of the command) and the first result, returned on every replay.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    clinic_id       text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     text        NOT NULL,
    stream_versions jsonb       NOT NULL DEFAULT '{}'::jsonb,
    first_position  bigint      NOT NULL DEFAULT 0,
    last_position   bigint      NOT NULL DEFAULT 0,
    result          jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, idempotency_key)
);

CREATE TABLE IF NOT EXISTS snapshots (
    clinic_id      text        NOT NULL,
    stream_id      text        NOT NULL,
    version        integer     NOT NULL CHECK (version > 0),
    schema_version integer     NOT NULL DEFAULT 1,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, stream_id)
);
