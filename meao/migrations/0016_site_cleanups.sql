-- Workloads left on a site that was deleted by force while it hosted instances: the site's
-- reconciliation removes them once a site of that id answers again, then forgets the row.
CREATE TABLE site_cleanups (
    site_id TEXT NOT NULL,
    app_instance_id TEXT NOT NULL,
    workload TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, workload)
);
