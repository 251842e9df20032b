-- Indexes for the questions asked of every instance at once, so that none reads every row:
-- placement counts the instantiated instances of each AppD on each site for every decision,
-- and deleting an instance asks whether its package still has any.
CREATE INDEX app_instances_placed ON app_instances (instantiation_state, site_id, app_d_id);
CREATE INDEX app_instances_by_package ON app_instances (app_pkg_id);
