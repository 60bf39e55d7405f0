-- Bootstrap written for the UUID redesign.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE IF NOT EXISTS users_web (
    id    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS tasks (
    id    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    title VARCHAR(300) NOT NULL
);

CREATE TABLE IF NOT EXISTS time_entries (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   UUID NOT NULL REFERENCES users_web (id),
    task_id    TEXT NOT NULL REFERENCES tasks (id),
    start_time TIMESTAMPTZ NOT NULL,
    stopped_at TIMESTAMPTZ,
    note       TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS ux_time_entries_owner_active
    ON time_entries (owner_id)
    WHERE stopped_at IS NULL;

CREATE TABLE IF NOT EXISTS api_tokens (
    token    VARCHAR(36) PRIMARY KEY,
    owner_id UUID NOT NULL REFERENCES users_web (id)
);

UPDATE time_entries SET stopped_at = now() WHERE stopped_at IS NULL;
