//! Data types shared by several ETSI MEC APIs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A hyperlink (`LinkType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkType {
    /// URI referring to a resource.
    pub href: String,
}

impl LinkType {
    /// A link to `href`.
    pub fn new(href: impl Into<String>) -> Self {
        Self { href: href.into() }
    }
}

/// Unix time split into seconds and nanoseconds (`TimeStamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeStamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: u32,
    /// Nanoseconds part.
    pub nano_seconds: u32,
}

impl TimeStamp {
    /// The given number of milliseconds since the Unix epoch as a time stamp.
    pub fn from_unix_millis(millis: i64) -> Self {
        let millis = millis.max(0);
        Self {
            seconds: u32::try_from(millis / 1000).unwrap_or(u32::MAX),
            nano_seconds: u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        i64::from(self.seconds) * 1000 + i64::from(self.nano_seconds / 1_000_000)
    }
}

/// Longest identifier accepted (ids of instances, services, rules, subscriptions, sites).
pub const MAX_ID: usize = 256;
/// Longest name accepted (application, service, package names, versions, providers).
pub const MAX_NAME: usize = 256;
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 4096;

/// Checks a name or identifier given by a client: not blank, at most `max` characters, no
/// control characters. The error names `field`.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} shall not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} contains control characters"));
    }
    Ok(())
}

/// The JSON Schema pattern of what [`check_text`] accepts: no control characters (Unicode
/// category Cc), and one character that is not white space (Unicode White_Space, spelled out:
/// regular expression engines disagree on `\s`).
pub const TEXT_PATTERN: &str = concat!(
    r"^[^\x00-\x1F\x7F-\x9F]*",
    r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^\x00-\x1F\x7F-\x9F]*$"
);

/// The schema of a string [`check_text`] accepts with `max`.
pub fn text_schema(max: usize) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(TEXT_PATTERN))
        .build()
}

/// The schema of a name [`check_text`] accepts ([`MAX_NAME`]).
pub fn name_schema() -> utoipa::openapi::Object {
    text_schema(MAX_NAME)
}

/// The schema of an identifier [`check_text`] accepts ([`MAX_ID`]).
pub fn id_schema() -> utoipa::openapi::Object {
    text_schema(MAX_ID)
}

/// [`id_schema`], or null: an optional identifier [`check_optional_text`] accepts.
pub fn optional_id_schema() -> utoipa::openapi::Object {
    nullable(id_schema())
}

/// [`name_schema`], or null: an optional name [`check_optional_text`] accepts.
pub fn optional_name_schema() -> utoipa::openapi::Object {
    nullable(name_schema())
}

fn nullable(mut schema: utoipa::openapi::Object) -> utoipa::openapi::Object {
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::schema::Type::String,
        utoipa::openapi::schema::Type::Null,
    ]);
    schema
}

/// Longest callback URI accepted.
pub const MAX_URI: usize = 2048;

/// What a callback URI the services accept looks like: http or https, a host name or an IP
/// literal (no user information), a port up to 65535, a path and a query of RFC 3986
/// characters (percent-encoded otherwise), no fragment. The same pattern in the documents and
/// in [`check_callback_uri`].
pub const CALLBACK_URI_PATTERN: &str = concat!(
    r"^[hH][tT][tT][pP][sS]?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])",
    // a port is at most 65535
    r"(:([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*)?",
    r"(\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$",
);

/// The schema of a callback URI the services accept: [`CALLBACK_URI_PATTERN`], at most
/// [`MAX_URI`] characters (whose destination the outbound policy may still refuse).
pub fn callback_uri_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
        .max_length(Some(MAX_URI))
        .pattern(Some(CALLBACK_URI_PATTERN))
        .build()
}

/// Checks a callback URI against [`callback_uri_schema`] (`field` names it in the message).
pub fn check_callback_uri(field: &str, uri: &str) -> Result<(), String> {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(CALLBACK_URI_PATTERN).ok());
    if uri.len() > MAX_URI {
        return Err(format!("{field} is longer than {MAX_URI} characters"));
    }
    match &*PATTERN {
        Some(pattern) if pattern.is_match(uri) => Ok(()),
        _ => Err(format!(
            "{field} shall be an absolute http or https URI (a host or an IP literal, an \
             optional port, path and query; no user information or fragment)"
        )),
    }
}

/// A schema written as JSON (for the shapes utoipa's attributes cannot state: several types,
/// alternatives); `{}` (anything) should the JSON not be a schema, which the document's
/// checked-in copy would show.
pub fn schema_of(json: serde_json::Value) -> utoipa::openapi::Schema {
    serde_json::from_value(json)
        .unwrap_or_else(|_| utoipa::openapi::Schema::Object(utoipa::openapi::Object::new()))
}

/// The schema of a DNS name [`crate::mp1::app_support::validate_dns_target`] accepts: labels
/// of 1 to 63 letters, digits, `-` or `_`, at most 253 characters (and a final dot).
pub fn fqdn_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(254))
        .pattern(Some(r"^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?$"))
        .build()
}

/// The schema of an IPv4 or IPv6 address.
pub fn ip_address_schema() -> utoipa::openapi::Schema {
    schema_of(serde_json::json!({
        "type": "string",
        "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
    }))
}

/// The schema of a string that has one value (ETSI: "Shall be set to ...").
pub fn single_value_schema(value: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([value]))
        .build()
}

/// [`check_text`] of an optional value.
pub fn check_optional_text(field: &str, value: Option<&str>, max: usize) -> Result<(), String> {
    value.map_or(Ok(()), |v| check_text(field, v, max))
}

/// A category reference (`CategoryRef`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRef {
    /// Reference of the catalogue.
    pub href: String,
    /// Unique identifier of the category.
    #[schema(schema_with = id_schema)]
    pub id: String,
    /// Name of the category.
    #[schema(schema_with = name_schema)]
    pub name: String,
    /// Category version.
    #[schema(schema_with = name_schema)]
    pub version: String,
}

/// A host and port pair (`Addresses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// Host portion of the address.
    pub host: String,
    /// Port portion of the address.
    #[schema(maximum = 65535)]
    pub port: u16,
}

/// Entry point of a service or application (`EndPointInfo`): exactly one member is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndPointInfo {
    /// URIs of the entry point (REST APIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<Vec<String>>,
    /// Fully qualified domain names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<Vec<String>>,
    /// IP address and port pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Addresses>>,
    /// Entry point in an implementation-specific format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub alternative: Option<serde_json::Value>,
}

impl EndPointInfo {
    /// Checks the ETSI rule that exactly one of `uris`, `fqdn`, `addresses`, `alternative` is set.
    pub fn validate(&self) -> Result<(), String> {
        let present = [
            self.uris.is_some(),
            self.fqdn.is_some(),
            self.addresses.is_some(),
            self.alternative.is_some(),
        ]
        .into_iter()
        .filter(|p| *p)
        .count();
        if present == 1 {
            Ok(())
        } else {
            Err("exactly one of uris, fqdn, addresses or alternative shall be present".into())
        }
    }
}

/// Grant types of OAuth 2.0; ETSI MEC supports only the client credentials grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantType {
    /// Authorization code grant.
    Oauth2AuthorizationCode,
    /// Implicit grant.
    Oauth2ImplicitGrant,
    /// Resource owner password credentials grant.
    Oauth2ResourceOwner,
    /// Client credentials grant (the one MEC supports).
    Oauth2ClientCredentials,
}

/// OAuth 2.0 parameters of a transport (`OAuth2Info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Info {
    /// Supported grant types.
    pub grant_types: Vec<GrantType>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
}

/// Security of a transport (`SecurityInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityInfo {
    /// OAuth 2.0 parameters, present when OAuth 2.0 secures the transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o_auth2_info: Option<OAuth2Info>,
}

/// Kinds of transport (`TransportType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransportType {
    /// RESTful API over HTTP.
    RestHttp,
    /// Topic-based message bus.
    MbTopicBased,
    /// Routing-based message bus.
    MbRouting,
    /// Publish-subscribe message bus.
    MbPubsub,
    /// Remote procedure call.
    Rpc,
    /// Streaming remote procedure call.
    RpcStreaming,
    /// WebSocket.
    Websocket,
}

/// Serialization formats (`SerializerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SerializerType {
    /// JSON.
    Json,
    /// XML 1.1.
    Xml,
    /// Protocol buffers version 3.
    Protobuf3,
}

/// A transport offered by the platform or brought by an application (`TransportInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportInfo {
    /// Identifier of the transport.
    pub id: String,
    /// Name of the transport.
    pub name: String,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Type of the transport.
    #[serde(rename = "type")]
    pub transport_type: TransportType,
    /// Protocol name, "HTTP" for REST.
    pub protocol: String,
    /// Protocol version.
    pub version: String,
    /// Where to reach the transport.
    pub endpoint: EndPointInfo,
    /// Security of the transport.
    pub security: SecurityInfo,
    /// Implementation-specific details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub impl_specific_info: Option<serde_json::Value>,
}

/// One entry of a subscription link list (`Subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionLink {
    /// URI of the subscription.
    pub href: String,
    /// Type of the subscription.
    pub subscription_type: String,
}

/// Links of a subscription link list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionLinkListLinks {
    /// Self-referring URI.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// The subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionLink>,
}

/// The subscriptions of an application instance (`SubscriptionLinkList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionLinkList {
    /// Links to this list and its subscriptions.
    #[serde(rename = "_links")]
    pub links: SubscriptionLinkListLinks,
}

/// A `_links` object holding only `self`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfLink {
    /// Self-referring URI.
    #[serde(rename = "self")]
    pub self_: LinkType,
}
