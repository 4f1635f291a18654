-- Projection "patient_activity": counters and the last activities of each patient.
-- Summaries hold ids, types and statuses only (no personal data).
CREATE TABLE IF NOT EXISTS patient_activity (
    clinic_id              text   NOT NULL,
    patient_id             text   NOT NULL,
    last_activity_at       timestamptz,
    appointments_requested bigint NOT NULL DEFAULT 0,
    appointments_scheduled bigint NOT NULL DEFAULT 0,
    appointments_cancelled bigint NOT NULL DEFAULT 0,
    appointments_completed bigint NOT NULL DEFAULT 0,
    appointments_no_show   bigint NOT NULL DEFAULT 0,
    messages_sent          bigint NOT NULL DEFAULT 0,
    messages_received      bigint NOT NULL DEFAULT 0,
    consents_recorded      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (clinic_id, patient_id)
);

CREATE TABLE IF NOT EXISTS patient_activity_recent (
    clinic_id       text        NOT NULL,
    patient_id      text        NOT NULL,
    global_position bigint      NOT NULL,
    occurred_at     timestamptz NOT NULL,
    event_type      text        NOT NULL,
    summary         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (clinic_id, patient_id, global_position)
);

-- Which patient an appointment or a message belongs to (their later events do not say).
CREATE TABLE IF NOT EXISTS patient_activity_links (
    clinic_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('appointment', 'message')),
    ref_id     text NOT NULL,
    patient_id text NOT NULL,
    PRIMARY KEY (clinic_id, kind, ref_id)
);
