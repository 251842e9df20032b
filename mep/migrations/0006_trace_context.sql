-- The W3C trace context (JSON: traceparent, tracestate) of the span that queued a
-- notification, so that its delivery joins that trace.
ALTER TABLE notifications ADD COLUMN trace_context TEXT;
