-- At most one operation in flight per application instance, whichever replica starts it: the
-- database refuses a second one (SQLite and PostgreSQL both have partial unique indexes).
CREATE UNIQUE INDEX app_lcm_op_occs_in_flight ON app_lcm_op_occs (app_instance_id)
    WHERE state IN ('STARTING', 'PROCESSING', 'FAILED_TEMP');
