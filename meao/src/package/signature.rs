//! Package signatures: a CMS (PKCS#7) signature over the manifest, checked with openssl against
//! the operator's trust anchors (NFV-SOL 004 security option 1).

use std::path::PathBuf;

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::{X509Store, X509StoreBuilder};

/// Trust anchors could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load trust anchor {path}")]
pub struct TrustError {
    path: PathBuf,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// Builds the store of trusted CA certificates from PEM files.
pub fn trust_store(paths: &[PathBuf]) -> Result<X509Store, TrustError> {
    let err = |path: &PathBuf| {
        let path = path.clone();
        move |e: Box<dyn std::error::Error + Send + Sync>| TrustError { path, source: e }
    };
    let mut builder = X509StoreBuilder::new().map_err(|e| err(&PathBuf::new())(Box::new(e)))?;
    for path in paths {
        let pem = std::fs::read(path).map_err(|e| err(path)(Box::new(e)))?;
        for cert in X509::stack_from_pem(&pem).map_err(|e| err(path)(Box::new(e)))? {
            builder.add_cert(cert).map_err(|e| err(path)(Box::new(e)))?;
        }
    }
    Ok(builder.build())
}

/// Verifies `cms_pem` as a detached signature over `signed`, by a certificate (from
/// `cert_pem` or embedded in the CMS) that chains to `trust`.
pub fn verify(
    signed: &[u8],
    cms_pem: &str,
    cert_pem: Option<&str>,
    trust: &X509Store,
) -> Result<(), String> {
    let mut cms = CmsContentInfo::from_pem(cms_pem.as_bytes())
        .map_err(|e| format!("signature is not a PEM CMS structure: {e}"))?;
    let mut certs = Stack::new().map_err(|e| e.to_string())?;
    if let Some(pem) = cert_pem {
        for cert in X509::stack_from_pem(pem.as_bytes())
            .map_err(|e| format!("certificate is not PEM: {e}"))?
        {
            certs.push(cert).map_err(|e| e.to_string())?;
        }
    }
    cms.verify(
        Some(&certs),
        Some(trust),
        Some(signed),
        None,
        CMSOptions::BINARY,
    )
    .map_err(|e| format!("signature verification failed: {e}"))
}
