-- mc_append_events (0002) learns read guards: a stream listed with an event count of 0
-- is only checked against its expected version (a 'conflict' when it moved) and writes
-- nothing; it is left out of the versions stored with the idempotency key, so a replay
-- answers the same stream versions as the first run did.
--
-- The command bus uses guards for aggregates it took from its in-process cache and only
-- read: the same statement that appends confirms they were current, so a stale cache
-- entry can only cost a conflict and a reload (adapters/cqrs.py, domain/cqrs.py).
-- Everything else is as in 0002 (same signature, same outcomes, same positions), except
-- that whether this transaction may have appended before is asked before its id is
-- taken: 0002 asked after pg_current_xact_id() had assigned one, so it always probed
-- the transaction's position range, one more index scan per append for nothing.
CREATE OR REPLACE FUNCTION mc_append_events(
    p_clinic_id       text,
    p_batch           jsonb,
    p_idempotency_key text,
    p_fingerprint     text,
    OUT outcome         text,
    OUT base_versions   integer[],
    OUT first_position  bigint,
    OUT last_position   bigint,
    OUT conflict_index  integer,
    OUT actual_version  integer,
    OUT stored_versions jsonb,
    OUT stored_result   jsonb
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_streams   jsonb := p_batch -> 's';
    n_streams   integer := jsonb_array_length(p_batch -> 's');
    n_events    integer := jsonb_array_length(p_batch -> 'e');
    v_stream    jsonb;
    v_count     integer;
    v_ids       text[];
    v_types     text[];
    v_key_ids   text[] := '{}';
    v_finals    text[] := '{}';
    v_base      integer[] := '{}';
    v_current   integer;
    v_expected  integer;
    v_xid_base  bigint;
    v_start     bigint;
    v_key       idempotency_keys%ROWTYPE;
    -- Without an id yet, this transaction wrote nothing: no earlier events of its own.
    v_prior     boolean := pg_current_xact_id_if_assigned() IS NOT NULL;
BEGIN
    first_position := 0;
    last_position := 0;
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO v_key FROM idempotency_keys k
         WHERE k.clinic_id = p_clinic_id AND k.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            outcome := CASE WHEN v_key.fingerprint = p_fingerprint
                            THEN 'replayed' ELSE 'key_reused' END;
            first_position := v_key.first_position;
            last_position := v_key.last_position;
            stored_versions := v_key.stream_versions;
            stored_result := v_key.result;
            RETURN;
        END IF;
    END IF;

    FOR i IN 1 .. n_streams LOOP
        v_stream := v_streams -> (i - 1);
        v_ids[i] := v_stream ->> 0;
        v_types[i] := v_stream ->> 1;
        v_expected := (v_stream ->> 2)::integer;
        v_count := (v_stream ->> 3)::integer;
        SELECT coalesce(max(e.version), 0) INTO v_current
          FROM events e
         WHERE e.clinic_id = p_clinic_id AND e.stream_id = v_ids[i];
        IF v_expected <> -1 AND v_expected <> v_current THEN
            outcome := 'conflict';
            conflict_index := i;
            actual_version := v_current;
            RETURN;
        END IF;
        v_base[i] := v_current;
        IF v_count > 0 THEN
            v_key_ids := v_key_ids || v_ids[i];
            v_finals := v_finals || (v_current + v_count)::text;
        END IF;
    END LOOP;

    IF n_events > 0 THEN
        v_xid_base := pg_current_xact_id()::text::bigint * 65536;
        v_start := v_xid_base;
        IF v_prior AND EXISTS (
            SELECT 1 FROM events e
             WHERE e.global_position > v_xid_base AND e.global_position < v_xid_base + 65536
        ) THEN
            -- This transaction appended before: continue after its last position.
            SELECT max(e.global_position) INTO v_start
              FROM events e
             WHERE e.global_position > v_xid_base AND e.global_position < v_xid_base + 65536;
        END IF;
        IF v_start + n_events >= v_xid_base + 65536 THEN
            RAISE EXCEPTION 'a transaction may append at most 65535 events'
                USING ERRCODE = 'program_limit_exceeded';
        END IF;
        first_position := v_start + 1;
        last_position := v_start + n_events;

        INSERT INTO events (global_position, clinic_id, stream_id, stream_type, version,
                            event_type, schema_version, data, metadata, idempotency_key)
        SELECT v_start + x.o, p_clinic_id, v_ids[(x.e ->> 0)::integer],
               v_types[(x.e ->> 0)::integer],
               v_base[(x.e ->> 0)::integer] + (x.e ->> 1)::integer,
               x.e ->> 2, (x.e ->> 3)::integer, x.e -> 4,
               coalesce(p_batch -> 'm', '{}'::jsonb), p_idempotency_key
          FROM jsonb_array_elements(p_batch -> 'e') WITH ORDINALITY AS x(e, o);
    END IF;

    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (clinic_id, idempotency_key, fingerprint, stream_versions,
                                      first_position, last_position, result)
        VALUES (p_clinic_id, p_idempotency_key, p_fingerprint,
                jsonb_object(v_key_ids, v_finals),
                first_position, last_position, nullif(p_batch -> 'r', 'null'::jsonb));
    END IF;

    outcome := 'appended';
    base_versions := v_base;
END
$$;
