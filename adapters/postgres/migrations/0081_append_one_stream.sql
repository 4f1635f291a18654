-- mc_append_one / mc_append_one_keyed: mc_append_events (0002, 0080) for the most common
-- append, ONE event on ONE stream (no read guards), as a single SQL statement with plain
-- parameters: no JSON batch to parse, no PL/pgSQL statements each taking a snapshot. Same
-- checks in the same order, same outcomes, same positions, same idempotency record as
-- mc_append_events; the event store picks them for such appends (event_store.py).
--
-- p_data, p_metadata, p_result: JSON as text (the client encodes it; cast here).
-- p_in_transaction: the caller is inside an explicit transaction, which may have appended
-- before: positions then continue after the transaction's last one (mc_next_position).
-- Outside one (autocommit, the command bus) the statement's transaction is new and has
-- appended nothing, so that probe is skipped. A wrong "false" cannot go unnoticed: the
-- position would collide with the earlier one on the events primary key.

-- The first position after those this transaction already used (p_base = xid * 65536).
CREATE OR REPLACE FUNCTION mc_next_position(p_base bigint, p_count integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_start bigint;
BEGIN
    SELECT coalesce(max(e.global_position), p_base) INTO v_start
      FROM events e
     WHERE e.global_position > p_base AND e.global_position < p_base + 65536;
    IF v_start + p_count >= p_base + 65536 THEN
        RAISE EXCEPTION 'a transaction may append at most 65535 events'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN v_start;
END
$$;

-- Without an idempotency key. base_version: the stream's version before (on a conflict,
-- its actual version); first_position: the event's position - 1, NULL on a conflict.
CREATE OR REPLACE FUNCTION mc_append_one(
    p_clinic_id       text,
    p_stream_id       text,
    p_stream_type     text,
    p_expected        integer,
    p_event_type      text,
    p_schema_version  integer,
    p_data            text,
    p_metadata        text,
    p_in_transaction  boolean,
    OUT base_version  integer,
    OUT start_position bigint
)
LANGUAGE sql VOLATILE AS $$
WITH cur AS (
    SELECT coalesce(max(e.version), 0) AS v
      FROM events e
     WHERE e.clinic_id = p_clinic_id AND e.stream_id = p_stream_id
),
pos AS (
    SELECT cur.v,
           CASE WHEN p_in_transaction THEN mc_next_position(x.base, 1) ELSE x.base END AS start
      FROM cur, (SELECT pg_current_xact_id()::text::bigint * 65536 AS base) x
     WHERE p_expected = -1 OR p_expected = cur.v
),
ev AS (
    INSERT INTO events (global_position, clinic_id, stream_id, stream_type, version,
                        event_type, schema_version, data, metadata, idempotency_key)
    SELECT pos.start + 1, p_clinic_id, p_stream_id, p_stream_type, pos.v + 1,
           p_event_type, p_schema_version, p_data::jsonb,
           coalesce(p_metadata::jsonb, '{}'::jsonb), NULL
      FROM pos
)
SELECT cur.v, pos.start FROM cur LEFT JOIN pos ON true
$$;

-- Under an idempotency key (the command bus binds it to the command and stores the
-- command's result with it). outcome: 'appended' | 'conflict' | 'replayed' | 'key_reused';
-- on a replay or a reuse the key's first outcome is returned and nothing is written.
-- A NULL key appends as mc_append_one does (in mc_append_batch's answer shape).
CREATE OR REPLACE FUNCTION mc_append_one_keyed(
    p_clinic_id       text,
    p_stream_id       text,
    p_stream_type     text,
    p_expected        integer,
    p_event_type      text,
    p_schema_version  integer,
    p_data            text,
    p_metadata        text,
    p_in_transaction  boolean,
    p_idempotency_key text,
    p_fingerprint     text,
    p_result          text,
    OUT outcome         text,
    OUT base_version    integer,
    OUT start_position  bigint,
    OUT stored_versions jsonb,
    OUT stored_first    bigint,
    OUT stored_last     bigint,
    OUT stored_result   jsonb
)
LANGUAGE sql VOLATILE AS $$
WITH k AS (
    SELECT k.fingerprint, k.stream_versions, k.first_position, k.last_position, k.result
      FROM idempotency_keys k
     WHERE k.clinic_id = p_clinic_id AND k.idempotency_key = p_idempotency_key
),
cur AS (
    SELECT coalesce(max(e.version), 0) AS v
      FROM events e
     WHERE e.clinic_id = p_clinic_id AND e.stream_id = p_stream_id
),
pos AS (
    SELECT cur.v,
           CASE WHEN p_in_transaction THEN mc_next_position(x.base, 1) ELSE x.base END AS start
      FROM cur, (SELECT pg_current_xact_id()::text::bigint * 65536 AS base) x
     WHERE NOT EXISTS (SELECT FROM k) AND (p_expected = -1 OR p_expected = cur.v)
),
ev AS (
    INSERT INTO events (global_position, clinic_id, stream_id, stream_type, version,
                        event_type, schema_version, data, metadata, idempotency_key)
    SELECT pos.start + 1, p_clinic_id, p_stream_id, p_stream_type, pos.v + 1,
           p_event_type, p_schema_version, p_data::jsonb,
           coalesce(p_metadata::jsonb, '{}'::jsonb), p_idempotency_key
      FROM pos
),
ki AS (
    INSERT INTO idempotency_keys (clinic_id, idempotency_key, fingerprint, stream_versions,
                                  first_position, last_position, result)
    SELECT p_clinic_id, p_idempotency_key, p_fingerprint,
           jsonb_build_object(p_stream_id, (pos.v + 1)::text),
           pos.start + 1, pos.start + 1, nullif(p_result::jsonb, 'null'::jsonb)
      FROM pos
     WHERE p_idempotency_key IS NOT NULL
)
SELECT CASE WHEN k.fingerprint IS NOT NULL
            THEN CASE WHEN k.fingerprint = p_fingerprint THEN 'replayed' ELSE 'key_reused' END
            WHEN pos.start IS NULL THEN 'conflict'
            ELSE 'appended' END,
       cur.v, pos.start, k.stream_versions, k.first_position, k.last_position, k.result
  FROM cur
  LEFT JOIN k ON true
  LEFT JOIN pos ON true
$$;
