-- The images an instance runs, pinned at its instantiation: software image descriptor id to
-- the reference by digest (JSON object); kept across relocations, cleared by a new instantiation.
ALTER TABLE app_instances ADD COLUMN pinned_images TEXT;
