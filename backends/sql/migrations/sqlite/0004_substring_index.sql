-- co, sw and ew filters served by an index: the strings of each resource's search copy in a
-- full-text index of trigrams. A filter whose needle has three characters or more first asks
-- the index which resources contain it somewhere, then checks those candidates exactly.
--
-- FTS5 addresses its rows by integer, and VACUUM may renumber the implicit rowids of
-- scimd_resources, so each resource gets a stable number here.
CREATE TABLE scimd_search_keys (
    rid    INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    kind   TEXT NOT NULL,
    id     TEXT NOT NULL,
    UNIQUE (source, kind, id)
);

-- Contentless: the strings are in scimd_resources already; only the index is stored.
CREATE VIRTUAL TABLE scimd_search_fts USING fts5(
    strings,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);

INSERT INTO scimd_search_keys (source, kind, id)
SELECT source, kind, id FROM scimd_resources;

INSERT INTO scimd_search_fts (rowid, strings)
SELECT k.rid,
       (SELECT group_concat(t.value, char(10)) FROM json_tree(r.search) AS t WHERE t.type = 'text')
FROM scimd_search_keys AS k
JOIN scimd_resources AS r ON r.source = k.source AND r.kind = k.kind AND r.id = k.id;

-- Kept in step by triggers, so every write (and any future writer) updates the index in its
-- own transaction.
CREATE TRIGGER scimd_search_fts_insert AFTER INSERT ON scimd_resources BEGIN
    INSERT INTO scimd_search_keys (source, kind, id) VALUES (NEW.source, NEW.kind, NEW.id);
    INSERT INTO scimd_search_fts (rowid, strings)
    VALUES (
        last_insert_rowid(),
        (SELECT group_concat(t.value, char(10)) FROM json_tree(NEW.search) AS t WHERE t.type = 'text')
    );
END;

CREATE TRIGGER scimd_search_fts_update AFTER UPDATE OF search ON scimd_resources
WHEN NEW.search IS NOT OLD.search BEGIN
    DELETE FROM scimd_search_fts WHERE rowid = (
        SELECT rid FROM scimd_search_keys
        WHERE source = OLD.source AND kind = OLD.kind AND id = OLD.id
    );
    INSERT INTO scimd_search_fts (rowid, strings)
    SELECT rid,
           (SELECT group_concat(t.value, char(10)) FROM json_tree(NEW.search) AS t WHERE t.type = 'text')
    FROM scimd_search_keys
    WHERE source = NEW.source AND kind = NEW.kind AND id = NEW.id;
END;

CREATE TRIGGER scimd_search_fts_delete AFTER DELETE ON scimd_resources BEGIN
    DELETE FROM scimd_search_fts WHERE rowid = (
        SELECT rid FROM scimd_search_keys
        WHERE source = OLD.source AND kind = OLD.kind AND id = OLD.id
    );
    DELETE FROM scimd_search_keys WHERE source = OLD.source AND kind = OLD.kind AND id = OLD.id;
END;
