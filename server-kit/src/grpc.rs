//! gRPC over openssl: the mutual-TLS channel a client dials with and the identity a server sees.
//!
//! Servers run tonic services through [`crate::serve::serve`], which puts the client
//! certificate's common name into each request as a [`PeerIdentity`].

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::serve::TlsError;

/// The common name of the certificate a TLS client presented (request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub String);

/// TLS settings of a client with a certificate of its own (mTLS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM certificate chain presented to the server.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle the server's certificate must chain to.
    pub ca_file: PathBuf,
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The URL is not `https://host:port`.
    #[error("invalid server URL {0}")]
    Url(String),
    /// The TCP connection, TLS handshake or HTTP/2 set-up failed.
    #[error("cannot connect to {url}")]
    Connect {
        /// The server.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Builds an openssl connector (TLS 1.2 or later, ALPN h2) presenting the client certificate.
pub fn tls_connector(config: &ClientTlsConfig) -> Result<SslConnector, TlsError> {
    let err = |what: &std::path::Path| {
        let what = what.display().to_string();
        move |source| TlsError::new(what, source)
    };
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(err("connector".as_ref()))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(err("protocol version".as_ref()))?;
    builder
        .set_ca_file(&config.ca_file)
        .map_err(err(&config.ca_file))?;
    builder
        .set_certificate_chain_file(&config.cert_file)
        .map_err(err(&config.cert_file))?;
    builder
        .set_private_key_file(&config.key_file, SslFiletype::PEM)
        .map_err(err(&config.key_file))?;
    builder
        .check_private_key()
        .map_err(err("key does not match certificate".as_ref()))?;
    builder
        .set_alpn_protos(b"\x02h2")
        .map_err(err("ALPN".as_ref()))?;
    Ok(builder.build())
}

/// Opens an HTTP/2 channel to `url` (`https://host:port`) over TLS with `connector`, with
/// keep-alive pings so that a dead link is noticed within `keep_alive` twice.
pub async fn channel(
    url: &str,
    connector: SslConnector,
    keep_alive: Duration,
) -> Result<tonic::transport::Channel, ChannelError> {
    let uri: http::Uri = url.parse().map_err(|_| ChannelError::Url(url.into()))?;
    let (Some("https"), Some(authority), Some(port)) =
        (uri.scheme_str(), uri.authority(), uri.port_u16())
    else {
        return Err(ChannelError::Url(url.into()));
    };
    // a bracketed IPv6 literal connects and is verified without its brackets
    let host = authority.host().trim_matches(['[', ']']).to_owned();
    // tonic's own TLS is rustls; the URL it sees is plain and the connector does TLS.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|_| ChannelError::Url(url.into()))?
        .connect_timeout(keep_alive)
        .http2_keep_alive_interval(keep_alive)
        .keep_alive_timeout(keep_alive)
        .keep_alive_while_idle(true);
    let connect = tower::service_fn(move |_: http::Uri| {
        let (connector, host) = (connector.clone(), host.clone());
        async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let ssl = connector
                .configure()
                .and_then(|c| c.into_ssl(&host))
                .map_err(std::io::Error::other)?;
            let mut tls = tokio_openssl::SslStream::new(ssl, tcp).map_err(std::io::Error::other)?;
            Pin::new(&mut tls)
                .connect()
                .await
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(connect)
        .await
        .map_err(|source| ChannelError::Connect {
            url: url.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn only_https_urls_with_a_port_are_dialled() {
        let connector = || {
            SslConnector::builder(SslMethod::tls_client())
                .unwrap()
                .build()
        };
        for url in ["http://meao:8443", "https://meao", "meao:8443", "https://"] {
            let result = channel(url, connector(), Duration::from_secs(1)).await;
            assert!(matches!(result, Err(ChannelError::Url(_))), "{url}");
        }
        // a bracketed IPv6 literal is dialled without its brackets: the listener sees the TCP
        // connection (the TLS handshake then fails against a plain socket)
        if let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await {
            let url = format!("https://[::1]:{}", listener.local_addr().unwrap().port());
            let dial =
                tokio::spawn(
                    async move { channel(&url, connector(), Duration::from_secs(1)).await },
                );
            let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
            assert!(matches!(accepted, Ok(Ok(_))), "nothing dialled [::1]");
            drop(accepted);
            assert!(dial.await.unwrap().is_err());
        }
    }
}
