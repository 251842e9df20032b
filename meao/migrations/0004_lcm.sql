-- Application instances and their LCM operation occurrences.
CREATE TABLE app_instances (
    id TEXT PRIMARY KEY,
    app_pkg_id TEXT NOT NULL,
    app_d_id TEXT NOT NULL,
    body TEXT NOT NULL,
    instantiation_state TEXT NOT NULL,
    operational_state TEXT,
    site_id TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE app_lcm_op_occs (
    id TEXT PRIMARY KEY,
    app_instance_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    error TEXT,
    placement TEXT,
    start_time BIGINT NOT NULL,
    state_entered BIGINT NOT NULL
);
CREATE INDEX op_occs_by_instance ON app_lcm_op_occs (app_instance_id, state);
