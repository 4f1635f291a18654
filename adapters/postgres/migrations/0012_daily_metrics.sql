-- Projection "daily_metrics": per clinic and Europe/Bucharest day.
CREATE TABLE IF NOT EXISTS daily_metrics (
    clinic_id              text   NOT NULL,
    day                    date   NOT NULL,
    new_leads              bigint NOT NULL DEFAULT 0,
    qualified_leads        bigint NOT NULL DEFAULT 0,
    converted_leads        bigint NOT NULL DEFAULT 0,
    lost_leads             bigint NOT NULL DEFAULT 0,
    appointments_scheduled bigint NOT NULL DEFAULT 0,
    appointments_cancelled bigint NOT NULL DEFAULT 0,
    messages_received      bigint NOT NULL DEFAULT 0,
    messages_sent          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (clinic_id, day)
);
