-- Crypto-shredding (adapters.crypto.keys): one AES-256 key per data subject and clinic
-- (subject_id = 'patient:<id>', 'lead:<id>', 'conversation:<id>'), wrapped with a
-- master key derived from MEDICALCOR_SECRET_KEY (HKDF), never stored in clear.
--
-- Erasing a subject destroys its keys: wrapped_key is set to NULL and the row stays as
-- the proof of when, by whom and why. A subject erased before it ever had a key gets
-- a row born destroyed (a tombstone), so no key can be created for it afterwards.
-- At most one live key per subject; older, destroyed generations keep their ids so
-- events sealed with them read as erased.
CREATE TABLE IF NOT EXISTS subject_keys (
    key_id          text        PRIMARY KEY,
    clinic_id       text        NOT NULL,
    subject_id      text        NOT NULL,
    wrapped_key     bytea,
    master_key_id   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    destroyed_at    timestamptz,
    destroyed_by    text,
    destroy_reason  text,
    CHECK ((destroyed_at IS NULL) = (wrapped_key IS NOT NULL)),
    CHECK ((wrapped_key IS NULL) = (master_key_id IS NULL))
);

CREATE UNIQUE INDEX IF NOT EXISTS subject_keys_live_idx
    ON subject_keys (clinic_id, subject_id) WHERE destroyed_at IS NULL;
CREATE INDEX IF NOT EXISTS subject_keys_subject_idx ON subject_keys (clinic_id, subject_id);

-- A destroyed key stays destroyed, and its row (the proof of erasure) stays.
CREATE OR REPLACE FUNCTION subject_keys_stay_destroyed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'subject keys are never deleted (destroy them instead)'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF OLD.destroyed_at IS NOT NULL THEN
        RAISE EXCEPTION 'subject key % was destroyed and cannot change', OLD.key_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS subject_keys_stay_destroyed ON subject_keys;
CREATE TRIGGER subject_keys_stay_destroyed
    BEFORE UPDATE OR DELETE ON subject_keys
    FOR EACH ROW EXECUTE FUNCTION subject_keys_stay_destroyed();

-- Who is linked to whom, and which streams hold data of a subject (written by
-- adapters.shredding_store on append, before the events). Erasing a patient destroys
-- the keys of every subject reachable from it (its leads, its conversations); the
-- right-of-access export reads every stream linked to those subjects. Ids only: the
-- lead and conversation ids are keyed pseudonyms, never phone numbers.
CREATE TABLE IF NOT EXISTS subject_links (
    clinic_id   text        NOT NULL,
    subject_id  text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('subject', 'stream')),
    target      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, subject_id, kind, target)
);
