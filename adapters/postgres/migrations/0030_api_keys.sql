-- Gateway API keys (adapters.api_keys). A key is shown once, as mc_<random>; only its
-- keyed hash (HMAC-SHA256 with the server secret) is stored. Each key belongs to ONE
-- clinic and carries a set of scopes; revocation is immediate (verify reads this table,
-- or a cache invalidated by NOTIFY on channel api_keys_changed).
CREATE TABLE IF NOT EXISTS api_keys (
    key_id            text        PRIMARY KEY,
    key_hash          bytea       NOT NULL UNIQUE,
    prefix            text        NOT NULL,
    clinic_id         text        NOT NULL,
    name              text        NOT NULL DEFAULT '',
    scopes            text[]      NOT NULL,
    rate_per_s        double precision CHECK (rate_per_s IS NULL OR rate_per_s > 0),
    burst             integer     CHECK (burst IS NULL OR burst > 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    CHECK (scopes <@ ARRAY['read', 'write', 'messaging', 'consent', 'admin']::text[])
);

CREATE INDEX IF NOT EXISTS api_keys_clinic_idx ON api_keys (clinic_id, created_at);
