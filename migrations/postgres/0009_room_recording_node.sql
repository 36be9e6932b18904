-- The node that holds a room or a recording (several nodes on one database): at start-up a
-- node ends only its own rooms and repairs only its own recordings (and those of no node, and
-- any node's hours old), so a node starting never closes another live node's room or marks
-- its recording interrupted. Rows written before this column have no node and are recovered
-- by any node, as before.
ALTER TABLE conferences ADD COLUMN node TEXT;
ALTER TABLE recordings ADD COLUMN node TEXT;
