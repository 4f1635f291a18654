-- Idempotency-Key of POST /ai/execute (adapters.http_idempotency): per clinic, the first
-- request's body fingerprint and, once done, its response. A retry with the same key and
-- body gets that response back and runs nothing; a different body gets 409.
CREATE TABLE IF NOT EXISTS http_idempotency (
    clinic_id         text        NOT NULL,
    idempotency_key   text        NOT NULL,
    fingerprint       text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('running', 'done')),
    status_code       integer,
    response          bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    PRIMARY KEY (clinic_id, idempotency_key)
);

CREATE INDEX IF NOT EXISTS http_idempotency_created_idx ON http_idempotency (created_at);
