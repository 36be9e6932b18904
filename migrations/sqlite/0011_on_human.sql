-- What an agentless campaign does when a person answers (issue 5, agentless mode): play the
-- campaign's message (as before), put the person through to a number, or ask a webhook.
ALTER TABLE campaigns ADD COLUMN on_human TEXT NOT NULL DEFAULT 'prompt'
    CHECK (on_human IN ('prompt', 'bridge', 'webhook'));
ALTER TABLE campaigns ADD COLUMN bridge_to TEXT;
ALTER TABLE campaigns ADD COLUMN on_human_url TEXT;
