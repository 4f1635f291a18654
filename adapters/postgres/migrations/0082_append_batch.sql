-- mc_append_batch: group commit. Several independent one-event appends (different
-- commands, each to one stream) in ONE statement and ONE transaction: one round trip and
-- one commit (one WAL flush) for all of them instead of one each.
--
-- Each item is judged on its own, exactly as mc_append_one_keyed judges it: its key's
-- first use answers 'replayed' or 'key_reused', a version mismatch answers 'conflict'
-- (nothing written for either), otherwise its event (and its key) are inserted. One
-- item's conflict does not touch the others. Items must name distinct streams and
-- distinct keys (the caller's batcher defers repeats to its next batch): all items are
-- judged against the same snapshot. Any error (a racing writer's unique violation, bad
-- data) rolls the whole statement back; the caller then runs the items one by one.
--
-- Positions: xid * 65536 + item (1-based; items not appended leave gaps, which the
-- global order allows), so positions follow item order, and every item's event sits
-- below the same read barrier as any other append's (the batch is a transaction of its
-- own, run outside any explicit transaction).
--
-- Answer per item (item = 1-based index): outcome, base_version (the stream's version
-- before; on a conflict its actual version), start_position (position - 1, NULL unless
-- appended), and the key's first outcome on a replay or a reuse.
CREATE OR REPLACE FUNCTION mc_append_batch(
    p_clinic_ids      text[],
    p_stream_ids      text[],
    p_stream_types    text[],
    p_expected        integer[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_data            text[],
    p_metadata        text[],
    p_keys            text[],
    p_fingerprints    text[],
    p_results         text[]
)
RETURNS TABLE (
    item            integer,
    outcome         text,
    base_version    integer,
    start_position  bigint,
    stored_versions jsonb,
    stored_first    bigint,
    stored_last     bigint,
    stored_result   jsonb
)
LANGUAGE sql VOLATILE AS $$
-- Both look-ups are correlated subqueries on purpose: one index probe per item whatever
-- the statistics say (a join planned while idempotency_keys was small, hashing a full
-- scan of it, would stay cached while the table grows).
WITH it AS MATERIALIZED (
    SELECT u.*,
           (SELECT k FROM idempotency_keys k
             WHERE k.clinic_id = u.clinic_id AND k.idempotency_key = u.idem_key) AS k,
           coalesce((SELECT max(e.version) FROM events e
                      WHERE e.clinic_id = u.clinic_id AND e.stream_id = u.stream_id), 0) AS v
      FROM unnest(p_clinic_ids, p_stream_ids, p_stream_types, p_expected, p_event_types,
                  p_schema_versions, p_data, p_metadata, p_keys, p_fingerprints, p_results)
               WITH ORDINALITY
               AS u(clinic_id, stream_id, stream_type, expected, event_type, schema_version,
                    data, metadata, idem_key, fingerprint, result, i)
),
ok AS MATERIALIZED (
    SELECT it.*
      FROM it
     WHERE (it.k).fingerprint IS NULL AND (it.expected = -1 OR it.expected = it.v)
),
base AS MATERIALIZED (
    SELECT pg_current_xact_id()::text::bigint * 65536 AS b WHERE EXISTS (SELECT FROM ok)
),
ev AS (
    INSERT INTO events (global_position, clinic_id, stream_id, stream_type, version,
                        event_type, schema_version, data, metadata, idempotency_key)
    SELECT base.b + ok.i, ok.clinic_id, ok.stream_id, ok.stream_type, ok.v + 1,
           ok.event_type, ok.schema_version, ok.data::jsonb,
           coalesce(ok.metadata::jsonb, '{}'::jsonb), ok.idem_key
      FROM ok, base
),
ki AS (
    INSERT INTO idempotency_keys (clinic_id, idempotency_key, fingerprint, stream_versions,
                                  first_position, last_position, result)
    SELECT ok.clinic_id, ok.idem_key, ok.fingerprint,
           jsonb_build_object(ok.stream_id, (ok.v + 1)::text),
           base.b + ok.i, base.b + ok.i, nullif(ok.result::jsonb, 'null'::jsonb)
      FROM ok, base
     WHERE ok.idem_key IS NOT NULL
)
SELECT it.i::integer,
       CASE WHEN (it.k).fingerprint IS NOT NULL
            THEN CASE WHEN (it.k).fingerprint = it.fingerprint
                      THEN 'replayed' ELSE 'key_reused' END
            WHEN ok.i IS NULL THEN 'conflict'
            ELSE 'appended' END,
       it.v, base.b + ok.i - 1, (it.k).stream_versions, (it.k).first_position,
       (it.k).last_position, (it.k).result
  FROM it
  LEFT JOIN ok ON ok.i = it.i
  LEFT JOIN base ON ok.i IS NOT NULL
 ORDER BY it.i
$$;
