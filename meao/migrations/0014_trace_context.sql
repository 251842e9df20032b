-- The W3C trace context (JSON: traceparent, tracestate) that joins deferred work to the trace
-- of the operation it belongs to: an LCM operation resumed after a crash, a desired
-- configuration resent to a MEP, a notification delivered later.
ALTER TABLE app_lcm_op_occs ADD COLUMN trace_context TEXT;
ALTER TABLE mep_configs ADD COLUMN trace_context TEXT;
ALTER TABLE notifications ADD COLUMN trace_context TEXT;
