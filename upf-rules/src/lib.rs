//! Compiles MEC traffic rules into PFCP (TS 29.244) sessions and Linux UPGW rules. Not built
//! yet: see the open issues.
