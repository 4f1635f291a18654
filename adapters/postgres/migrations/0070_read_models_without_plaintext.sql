-- Read models keep no personal value in clear (issue #8; adapters/projections/personal.py).
-- Lookup columns become keyed hashes (HMAC under the server secret, per clinic), values
-- only shown become sealed under the data subject's key, so an erasure (crypto-shredding)
-- makes them unreadable in live and rebuilt read models alike.
--
-- SQL cannot compute the hashes (the secret stays in the application), so the affected
-- tables are emptied and their checkpoints reset: the projector sees that its projections
-- are newer than the version the checkpoint records and rebuilds them from the events.
-- TRUNCATE (unlike DROP COLUMN) leaves no old plaintext behind in the tables' files.

-- The version of the projection code that wrote a projection's rows. Existing rows were
-- written by version 1, the version every projection had until now.
ALTER TABLE projection_checkpoints ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1;

TRUNCATE rm_patients, rm_leads, rm_consents, rm_messages;
UPDATE projection_checkpoints
   SET position = 0, last_event_at = NULL, events_applied = 0, version = 1, updated_at = now()
 WHERE name IN ('patients', 'leads', 'consents', 'messages');

-- patients: the profile sealed in one value; phone and e-mail found by keyed hash.
DROP INDEX IF EXISTS rm_patients_phone_idx;
DROP INDEX IF EXISTS rm_patients_email_idx;
ALTER TABLE rm_patients
    DROP COLUMN first_name,
    DROP COLUMN last_name,
    DROP COLUMN phone,
    DROP COLUMN email,
    DROP COLUMN date_of_birth,
    DROP COLUMN notes,
    DROP COLUMN tags,
    ADD COLUMN profile_sealed jsonb,
    ADD COLUMN phone_hash     text,
    ADD COLUMN email_hash     text;
CREATE INDEX rm_patients_phone_hash_idx ON rm_patients (clinic_id, phone_hash)
    WHERE phone_hash IS NOT NULL;
CREATE INDEX rm_patients_email_hash_idx ON rm_patients (clinic_id, email_hash)
    WHERE email_hash IS NOT NULL;

-- leads: found by id (already the keyed hash of the phone); the phone only shown.
ALTER TABLE rm_leads
    DROP COLUMN phone,
    ADD COLUMN phone_sealed jsonb;

-- consents: found by the keyed hash of the phone; the IP address (Art. 7 proof) sealed.
DROP INDEX IF EXISTS rm_consents_phone_idx;
ALTER TABLE rm_consents
    DROP COLUMN phone,
    DROP COLUMN ip_address,
    ADD COLUMN phone_hash        text,
    ADD COLUMN ip_address_sealed jsonb;
CREATE INDEX rm_consents_phone_hash_idx ON rm_consents (clinic_id, phone_hash)
    WHERE phone_hash IS NOT NULL;

-- messages: the phone only shown.
ALTER TABLE rm_messages
    DROP COLUMN phone,
    ADD COLUMN phone_sealed jsonb;
