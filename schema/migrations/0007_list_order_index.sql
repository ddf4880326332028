-- Lists without sortBy return resources in creation (rowid) order. An index on (tenant, type)
-- holds its entries in (tenant, type, rowid) order, so a page is read straight off it instead
-- of sorting every resource of the tenant first (a temp B-tree over 100,000 rows per page).
CREATE INDEX resources_by_type ON resources (tenant, type);
