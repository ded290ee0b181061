-- The durable outbox of messages to deliver (signed SCIM event SETs). Times are Unix
-- microseconds, so that due and lease comparisons are numeric.
CREATE TABLE scimd_outbox (
    id           TEXT PRIMARY KEY,
    stream       TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created      BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    failed       BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX scimd_outbox_due ON scimd_outbox (stream, failed, next_attempt);
