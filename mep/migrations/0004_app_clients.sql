-- The OAuth 2.0 client of each application instance (AppClient JSON: client id and the
-- digests of its accepted secrets), issued by MEC management; NULL: none.
ALTER TABLE app_instances ADD COLUMN oauth2_client TEXT;
