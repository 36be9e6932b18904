-- The identification message of a campaign (issue 5, predictive mode): the prompt a person
-- hears when they answered and no agent was free, before the dialer hangs up. No prompt: the
-- call is hung up at once, as before.
ALTER TABLE campaigns ADD COLUMN abandon_prompt TEXT;
