-- The services an application instance declares it produces (appServiceProduced of its AppD,
-- JSON array); it may register only those. NULL or empty: no restriction.
ALTER TABLE app_instances ADD COLUMN services_produced TEXT;
