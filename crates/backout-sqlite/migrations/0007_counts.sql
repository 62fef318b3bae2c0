-- Issue 16: `/metrics` counts runs, deliveries and releases by state (`Store::counts`). These
-- indexes make each count a scan of a small index instead of the table (whose rows carry plan
-- texts and step output): the cost of a scrape stays small as history grows.
CREATE INDEX runs_by_state ON runs (state);
CREATE INDEX deliveries_by_state ON deliveries (state);
CREATE INDEX releases_by_state ON releases (state, close_reason);
