//! End-to-end suites that start real mecplane processes (MEAO, MEPs, brokers, clusters).
