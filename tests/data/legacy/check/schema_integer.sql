-- The schema production runs: INTEGER keys, end_time (no stopped_at), one UUID-keyed table.
CREATE TABLE users_web (
    id    serial PRIMARY KEY,
    email varchar(255) NOT NULL UNIQUE
);
CREATE TABLE tasks (
    id    serial PRIMARY KEY,
    title varchar(300) NOT NULL
);
CREATE TABLE time_entries (
    id         serial PRIMARY KEY,
    owner_id   integer NOT NULL REFERENCES users_web (id),
    task_id    integer NOT NULL REFERENCES tasks (id),
    start_time timestamptz NOT NULL,
    end_time   timestamptz,
    note       text
);
CREATE UNIQUE INDEX ux_time_entries_owner_active ON time_entries (owner_id) WHERE end_time IS NULL;
CREATE TABLE api_tokens (
    token    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id integer NOT NULL REFERENCES users_web (id)
);
