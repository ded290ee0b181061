-- scimd storage model, SQLite dialect. Timestamps are microseconds since the Unix epoch (UTC).

CREATE TABLE scimd_resources (
    source            TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('User', 'Group')),
    id                TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    created           INTEGER NOT NULL,
    last_modified     INTEGER NOT NULL,
    -- The canonical attributes as JSON text, without `members` and `groups`.
    attrs             TEXT    NOT NULL,
    -- JSONB copy of attrs that filters and sorting read: strings of attributes that are not
    -- caseExact are case-folded, dateTimes normalized to fixed-width UTC.
    search            BLOB    NOT NULL,
    -- Case-folded userName (users only): unique per source.
    user_name_fold    TEXT,
    external_id       TEXT,
    display_name      TEXT,
    display_name_fold TEXT,
    PRIMARY KEY (source, kind, id)
);

CREATE UNIQUE INDEX scimd_resources_user_name ON scimd_resources (source, kind, user_name_fold);
CREATE INDEX scimd_resources_external_id ON scimd_resources (source, kind, external_id);
CREATE INDEX scimd_resources_display_name ON scimd_resources (source, kind, display_name_fold);
CREATE INDEX scimd_resources_created ON scimd_resources (source, kind, created, id);
CREATE INDEX scimd_resources_last_modified ON scimd_resources (source, kind, last_modified, id);

-- Case-folded `emails.value` of users, one row per address.
CREATE TABLE scimd_emails (
    source  TEXT NOT NULL,
    user_id TEXT NOT NULL,
    value   TEXT NOT NULL
);

CREATE INDEX scimd_emails_value ON scimd_emails (source, value);
CREATE INDEX scimd_emails_user ON scimd_emails (source, user_id);

-- Group membership as a relation: one row per (group, member).
CREATE TABLE scimd_members (
    seq          INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    member_type  TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    display      TEXT,
    display_fold TEXT,
    UNIQUE (source, group_id, member_id),
    FOREIGN KEY (source, member_type, member_id)
        REFERENCES scimd_resources (source, kind, id) ON DELETE CASCADE
);

CREATE INDEX scimd_members_member ON scimd_members (source, member_type, member_id);

-- Bearer tokens: only hashes of the secrets. Timestamps are RFC 3339 text in UTC.
CREATE TABLE scimd_tokens (
    id      TEXT PRIMARY KEY,
    source  TEXT NOT NULL,
    name    TEXT NOT NULL,
    hash    TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT,
    UNIQUE (source, name)
);
