-- Lists sorted by meta.lastModified ("what changed lately", the sort incremental readers ask
-- for) read their pages off this index instead of sorting every resource of the type first (a
-- temp B-tree over 100,000 rows per page). Entries are held in (tenant, type, modified, rowid)
-- order, exactly the order a sorted page asks for (rowid breaks ties); SQLite walks it
-- backwards for descending pages. userName, displayName and externalId are served by the
-- indexes of 0001. Sorting by id or meta.created stays a sort: every index costs every POST
-- and DELETE (and this one every PATCH and PUT), and nothing we know of pages by those.
CREATE INDEX resources_by_modified ON resources (tenant, type, modified);
