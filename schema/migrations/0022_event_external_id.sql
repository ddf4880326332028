-- Security event tokens (RFC 9967, issue 13): a SET names its subject by `sub_id`, with the
-- resource's `externalId` "if known" (§2.1). While the resource exists it is read from it;
-- a delete removes the row, so the delete's event keeps the externalId the resource had,
-- read by the event's own INSERT from the state its batch starts from. NULL for other writes
-- and for resources without one.
ALTER TABLE events ADD COLUMN external_id TEXT;
