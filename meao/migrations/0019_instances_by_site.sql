-- Placement counts the instantiated instances of each AppD on each site for every decision:
-- from this index alone, not by reading every instance.
CREATE INDEX app_instances_placed ON app_instances (instantiation_state, site_id, app_d_id);
