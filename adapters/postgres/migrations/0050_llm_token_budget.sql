-- The LLM token cap (adapters.llm_budget): input + output tokens the Anthropic API
-- reported, per clinic and clinic-local day (Europe/Bucharest), so the daily cap
-- (MEDICALCOR_LLM_DAILY_TOKENS) holds across API replicas and restarts.
--
-- A Claude call first reserves an upper bound of its usage (mc_llm_reserve). It is
-- admitted while the day's usage plus the reservations of calls still in flight is
-- below the cap. The usage row is locked while this is decided, so concurrent callers
-- of one clinic (on any replica) decide one after the other and the cap is overshot by
-- at most the last admitted call's own usage. When the call ends, mc_llm_settle swaps
-- its reservation for the usage the API reported, in one transaction. A reservation
-- whose caller died expires (expires_at) instead of holding the budget for the day.
CREATE TABLE IF NOT EXISTS llm_token_usage (
    clinic_id      text        NOT NULL,
    day            date        NOT NULL,
    input_tokens   bigint      NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens  bigint      NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    calls          integer     NOT NULL DEFAULT 0 CHECK (calls >= 0),
    refused        integer     NOT NULL DEFAULT 0 CHECK (refused >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, day)
);

CREATE TABLE IF NOT EXISTS llm_token_reservations (
    id          bigserial   PRIMARY KEY,
    clinic_id   text        NOT NULL,
    day         date        NOT NULL,
    tokens      bigint      NOT NULL CHECK (tokens >= 0),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS llm_token_reservations_clinic_idx
    ON llm_token_reservations (clinic_id, day);

-- Admit (a reservation id) or refuse (NULL) one call; also returns what was seen.
-- Locks: the usage row first, then reservations (mc_llm_settle takes them in the
-- same order, so the two never deadlock).
CREATE OR REPLACE FUNCTION mc_llm_reserve(
    p_clinic text, p_day date, p_tokens bigint, p_cap bigint, p_ttl_s double precision
) RETURNS TABLE (reservation_id bigint, used bigint, reserved bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_used     bigint;
    v_reserved bigint;
    v_id       bigint;
BEGIN
    INSERT INTO llm_token_usage (clinic_id, day) VALUES (p_clinic, p_day)
    ON CONFLICT (clinic_id, day) DO NOTHING;
    SELECT u.input_tokens + u.output_tokens INTO v_used
    FROM llm_token_usage u
    WHERE u.clinic_id = p_clinic AND u.day = p_day
    FOR UPDATE;
    -- Each statement below takes a new snapshot: it sees every reservation committed
    -- by a concurrent caller that held the row lock before us.
    DELETE FROM llm_token_reservations r
    WHERE r.clinic_id = p_clinic AND r.expires_at <= clock_timestamp();
    SELECT coalesce(sum(r.tokens), 0) INTO v_reserved
    FROM llm_token_reservations r
    WHERE r.clinic_id = p_clinic AND r.day = p_day;
    IF v_used + v_reserved < p_cap THEN
        INSERT INTO llm_token_reservations (clinic_id, day, tokens, expires_at)
        VALUES (p_clinic, p_day, p_tokens, clock_timestamp() + make_interval(secs => p_ttl_s))
        RETURNING id INTO v_id;
    ELSE
        UPDATE llm_token_usage u SET refused = u.refused + 1, updated_at = now()
        WHERE u.clinic_id = p_clinic AND u.day = p_day;
    END IF;
    RETURN QUERY SELECT v_id, v_used, v_reserved;
END
$$;

-- Record what a call used and drop its reservation (harmless if it already expired).
CREATE OR REPLACE FUNCTION mc_llm_settle(
    p_reservation bigint, p_clinic text, p_day date, p_input bigint, p_output bigint
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO llm_token_usage AS u (clinic_id, day, input_tokens, output_tokens, calls)
    VALUES (p_clinic, p_day, p_input, p_output, 1)
    ON CONFLICT (clinic_id, day) DO UPDATE
    SET input_tokens = u.input_tokens + EXCLUDED.input_tokens,
        output_tokens = u.output_tokens + EXCLUDED.output_tokens,
        calls = u.calls + 1,
        updated_at = now();
    DELETE FROM llm_token_reservations r WHERE r.id = p_reservation;
END
$$;
