-- Projection "lead_stats": per-lead facts (for analytics over date ranges) and running
-- totals by channel, classification and status. A re-score moves the lead between
-- classifications (never counted twice); a lost or converted lead leaves its old status.
CREATE TABLE IF NOT EXISTS lead_stats_leads (
    clinic_id      text    NOT NULL,
    lead_id        text    NOT NULL,
    channel        text    NOT NULL,
    created_day    date    NOT NULL,
    status         text    NOT NULL,
    classification text,
    score          integer,
    qualified      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (clinic_id, lead_id)
);

CREATE INDEX IF NOT EXISTS lead_stats_leads_day_idx
    ON lead_stats_leads (clinic_id, created_day);

CREATE TABLE IF NOT EXISTS lead_stats_totals (
    clinic_id text   NOT NULL,
    dimension text   NOT NULL CHECK (dimension IN ('channel', 'classification', 'status')),
    value     text   NOT NULL,
    leads     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (clinic_id, dimension, value)
);

CREATE TABLE IF NOT EXISTS lead_stats_summary (
    clinic_id text   PRIMARY KEY,
    leads     bigint NOT NULL DEFAULT 0,
    scored    bigint NOT NULL DEFAULT 0,
    score_sum bigint NOT NULL DEFAULT 0,
    qualified bigint NOT NULL DEFAULT 0,
    converted bigint NOT NULL DEFAULT 0,
    lost      bigint NOT NULL DEFAULT 0
);
