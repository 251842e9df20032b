//! The mecplane contract: ETSI MEC data types shared by the MEAO, the MEP and their clients.
//!
//! Types carry the ETSI names and field names (MEC 011 v3.1.1 for Mp1, MEC 010-2 v3.1.1 for Mm1) through serde, derive
//! utoipa schemas for the generated OpenAPI documents, and reject unknown fields so a typo in a
//! request is a 400, not a silently ignored attribute. Bodies are bare, as in v2.1.1 and the ETSI
//! conformance tests (the v3.1.1 OAS wraps them in a type-named object, a generator artefact).
//! This crate knows nothing of HTTP servers, databases or VIMs. The MEAO-MEP link's protocol is
//! [`meplink`], generated from `proto/meplink.proto`.

pub mod common;
pub mod inventory;
pub mod location;
pub mod mm1;
pub mod mp1;
pub mod oauth;
pub mod problem;

pub use problem::ProblemDetails;

/// The MEAO-MEP link (`proto/meplink.proto`): messages and the tonic client and server.
#[allow(missing_docs, clippy::all)]
pub mod meplink {
    tonic::include_proto!("mecplane.meplink.v1");
}
