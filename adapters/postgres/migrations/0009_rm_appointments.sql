-- Read model "appointments": appointments, and each doctor's held and booked slots
-- (a released slot is removed). One occupancy row per (doctor-day stream, appointment).
CREATE TABLE IF NOT EXISTS rm_appointments (
    clinic_id           text        NOT NULL,
    appointment_id      text        NOT NULL,
    patient_id          text        NOT NULL,
    doctor_id           text        NOT NULL,
    service_type        text        NOT NULL,
    start_at            timestamptz NOT NULL,
    end_at              timestamptz NOT NULL,
    status              text        NOT NULL,
    urgency             text,
    preferred_time_slot text,
    workflow_id         text,
    reminders           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    cancel_reason       text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (clinic_id, appointment_id)
);

CREATE INDEX IF NOT EXISTS rm_appointments_patient_idx
    ON rm_appointments (clinic_id, patient_id, start_at);
CREATE INDEX IF NOT EXISTS rm_appointments_doctor_idx
    ON rm_appointments (clinic_id, doctor_id, start_at);
CREATE INDEX IF NOT EXISTS rm_appointments_start_idx ON rm_appointments (clinic_id, start_at);

CREATE TABLE IF NOT EXISTS rm_slot_occupancy (
    clinic_id      text        NOT NULL,
    stream_id      text        NOT NULL,
    appointment_id text        NOT NULL,
    doctor_id      text        NOT NULL,
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL,
    state          text        NOT NULL CHECK (state IN ('held', 'booked')),
    PRIMARY KEY (clinic_id, stream_id, appointment_id)
);

CREATE INDEX IF NOT EXISTS rm_slot_occupancy_time_idx
    ON rm_slot_occupancy (clinic_id, start_at);
