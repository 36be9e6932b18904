-- Talk and wrap-up time of a call an agent handled, stored with its disposition (issue 5,
-- predictive mode): after a restart the campaign's predictive pacer is rebuilt from the
-- stored attempts, handle times included, instead of starting from its priors.
ALTER TABLE attempts ADD COLUMN talk_ms INTEGER;
ALTER TABLE attempts ADD COLUMN wrap_up_ms INTEGER;
