//! The OpenAPI contract: the checked-in document matches the code, and real responses validate
//! against the ETSI MEC 011 schemas in `shared/etsi-specs`.
