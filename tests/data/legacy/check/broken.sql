-- One statement that does not parse; the rest must still be analysed.
CREATE TABLE IF NOT EXISTS tasks (id SERIAL PRIMARY KEY, title VARCHAR(300) NOT NULL);
UPDATE tasks SET = 1;
CREATE INDEX IF NOT EXISTS ix_time_entries_stopped ON time_entries (stopped_at);
CREATE TABLE IF NOT EXISTS big_parent (id BIGSERIAL PRIMARY KEY);
CREATE TABLE IF NOT EXISTS task_links (
    task_id  INTEGER NOT NULL REFERENCES tasks (id),
    big_id   INTEGER NOT NULL REFERENCES big_parent (id)
);
