-- Every gateway function call's authorisation decision (adapters.audit). No personal
-- data: who (actor, key), where (clinic), what (function), the decision and why, and the
-- trace and idempotency key that tie it to the request, its events and its workflows.
CREATE TABLE IF NOT EXISTS audit_log (
    id                bigserial   PRIMARY KEY,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    clinic_id         text        NOT NULL,
    actor             text        NOT NULL,
    key_id            text,
    function          text        NOT NULL,
    decision          text        NOT NULL CHECK (decision IN ('allowed', 'denied')),
    reason            text,
    surface           text        NOT NULL DEFAULT 'http',
    request_id        text,
    trace_id          text,
    idempotency_key   text
);

CREATE INDEX IF NOT EXISTS audit_log_clinic_time_idx ON audit_log (clinic_id, recorded_at DESC);
CREATE INDEX IF NOT EXISTS audit_log_request_idx ON audit_log (request_id);
