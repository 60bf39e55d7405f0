-- Bootstrap matching the production schema.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE IF NOT EXISTS users_web (
    id    SERIAL PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS tasks (
    id    SERIAL PRIMARY KEY,
    title VARCHAR(300) NOT NULL
);

CREATE TABLE IF NOT EXISTS time_entries (
    id         SERIAL PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES users_web (id),
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    start_time TIMESTAMPTZ NOT NULL,
    end_time   TIMESTAMPTZ,
    note       TEXT
);
ALTER TABLE time_entries ADD COLUMN IF NOT EXISTS note TEXT;

CREATE UNIQUE INDEX IF NOT EXISTS ux_time_entries_owner_active
    ON time_entries (owner_id)
    WHERE end_time IS NULL;

CREATE TABLE IF NOT EXISTS api_tokens (
    token    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id INTEGER NOT NULL REFERENCES users_web (id)
);

DO $$
BEGIN
    UPDATE time_entries SET end_time = now() WHERE end_time IS NULL AND start_time < now() - interval '1 day';
END
$$;

INSERT INTO tasks (title) VALUES ('Inbox') ON CONFLICT DO NOTHING;
UPDATE time_entries SET end_time = now() WHERE end_time IS NULL;
