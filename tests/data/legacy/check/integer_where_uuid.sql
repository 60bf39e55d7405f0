-- The reverse of the incident: an INTEGER key where the schema holds a UUID.
CREATE TABLE IF NOT EXISTS api_tokens (
    token    SERIAL PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users_web (id)
);
INSERT INTO api_tokens (token, owner_id) VALUES (1, 1);
