-- The descriptors an instantiation request put in place of the AppD's (JSON; NULL when none):
-- every later deployment of the instance (relocation, reconciliation) uses them too.
ALTER TABLE app_instances ADD COLUMN instantiation_overrides TEXT;
