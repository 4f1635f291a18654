-- One checkpoint per projection: the global position its tables reflect. The
-- projector moves it in the same transaction as the rows it writes, so a crash
-- between the two re-applies nothing twice.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name           text        PRIMARY KEY,
    position       bigint      NOT NULL DEFAULT 0,
    last_event_at  timestamptz,
    events_applied bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    rebuilt_at     timestamptz
);
