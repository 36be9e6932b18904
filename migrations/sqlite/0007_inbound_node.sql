-- The node that holds an inbound call (issue 6 on several nodes): the start-up sweeper decides
-- only its own node's undecided calls (and any node's that are hours old), so a node starting
-- never records another node's ringing call as missed. Rows written before this column have
-- no node and are swept by any node, as before.
ALTER TABLE inbound_calls ADD COLUMN node TEXT;
