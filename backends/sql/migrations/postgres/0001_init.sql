-- scimd storage model, PostgreSQL dialect. Timestamps are microseconds since the Unix epoch (UTC).
-- Text columns use the "C" collation so that ordering is by code point, as in the core.

CREATE TABLE scimd_resources (
    source            TEXT   COLLATE "C" NOT NULL,
    kind              TEXT   COLLATE "C" NOT NULL CHECK (kind IN ('User', 'Group')),
    id                TEXT   COLLATE "C" NOT NULL,
    version           BIGINT NOT NULL,
    created           BIGINT NOT NULL,
    last_modified     BIGINT NOT NULL,
    -- The canonical attributes as JSON text (key order kept), without `members` and `groups`.
    attrs             TEXT   NOT NULL,
    -- Copy of attrs that filters and sorting read: strings of attributes that are not
    -- caseExact are case-folded, dateTimes normalized to fixed-width UTC.
    search            JSONB  NOT NULL,
    user_name_fold    TEXT   COLLATE "C",
    external_id       TEXT   COLLATE "C",
    display_name      TEXT,
    display_name_fold TEXT   COLLATE "C",
    PRIMARY KEY (source, kind, id)
);

CREATE UNIQUE INDEX scimd_resources_user_name ON scimd_resources (source, kind, user_name_fold);
CREATE INDEX scimd_resources_external_id ON scimd_resources (source, kind, external_id);
CREATE INDEX scimd_resources_display_name ON scimd_resources (source, kind, display_name_fold);
CREATE INDEX scimd_resources_created ON scimd_resources (source, kind, created, id);
CREATE INDEX scimd_resources_last_modified ON scimd_resources (source, kind, last_modified, id);

CREATE TABLE scimd_emails (
    source  TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    value   TEXT COLLATE "C" NOT NULL
);

CREATE INDEX scimd_emails_value ON scimd_emails (source, value);
CREATE INDEX scimd_emails_user ON scimd_emails (source, user_id);

CREATE TABLE scimd_members (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT COLLATE "C" NOT NULL,
    group_id     TEXT COLLATE "C" NOT NULL,
    member_id    TEXT COLLATE "C" NOT NULL,
    member_type  TEXT COLLATE "C" NOT NULL CHECK (member_type IN ('User', 'Group')),
    display      TEXT,
    display_fold TEXT COLLATE "C",
    UNIQUE (source, group_id, member_id),
    FOREIGN KEY (source, member_type, member_id)
        REFERENCES scimd_resources (source, kind, id) ON DELETE CASCADE
);

CREATE INDEX scimd_members_member ON scimd_members (source, member_type, member_id);

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
