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
    #[schema(maximum = 999_999_999)]
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

/// [`text_schema`], or null: an optional text [`check_optional_text`] accepts with `max`.
pub fn optional_text_schema(max: usize) -> utoipa::openapi::Object {
    nullable(text_schema(max))
}

/// [`id_schema`], or null: an optional identifier [`check_optional_text`] accepts.
pub fn optional_id_schema() -> utoipa::openapi::Object {
    optional_text_schema(MAX_ID)
}

/// [`name_schema`], or null: an optional name [`check_optional_text`] accepts.
pub fn optional_name_schema() -> utoipa::openapi::Object {
    optional_text_schema(MAX_NAME)
}

/// The schema of a list of identifiers [`check_text`] accepts ([`MAX_ID`] each).
pub fn id_list_schema() -> utoipa::openapi::Schema {
    let item = serde_json::to_value(id_schema()).unwrap_or_default();
    schema_of(serde_json::json!({"type": "array", "items": item}))
}

/// [`id_list_schema`], or null.
pub fn optional_id_list_schema() -> utoipa::openapi::Schema {
    optional_list_of(id_schema())
}

/// A list of names [`check_text`] accepts ([`MAX_NAME`] each), or null.
pub fn optional_name_list_schema() -> utoipa::openapi::Schema {
    optional_list_of(name_schema())
}

/// [`check_text`] of each value of an optional list.
pub fn check_text_list(field: &str, values: Option<&[String]>, max: usize) -> Result<(), String> {
    values
        .unwrap_or_default()
        .iter()
        .try_for_each(|value| check_text(field, value, max))
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

/// What [`schema_of`] gives for JSON utoipa cannot read as a schema (the documents' tests
/// look for it).
pub const NOT_A_SCHEMA: &str = "mecplane: this schema, written as JSON, is not one utoipa reads";

/// A schema written as JSON (for the shapes utoipa's attributes cannot state: several types,
/// alternatives); an object described as [`NOT_A_SCHEMA`] should utoipa not read the JSON
/// (every member schema needs a `type`, `$ref` or combinator).
pub fn schema_of(json: serde_json::Value) -> utoipa::openapi::Schema {
    serde_json::from_value(json).unwrap_or_else(|_| {
        utoipa::openapi::Schema::Object(
            utoipa::openapi::ObjectBuilder::new()
                .description(Some(NOT_A_SCHEMA))
                .build(),
        )
    })
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

/// An IPv4 address in dotted decimal, without leading zeros.
macro_rules! ipv4 {
    () => {
        r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
    };
}

/// An IPv6 address in the RFC 4291 text forms (with `::`, and with a final IPv4 address after
/// `::`, `::ffff:`, one to four groups and `::`, or six groups), without a zone.
macro_rules! ipv6 {
    () => {
        concat!(
            r"(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
            r"|([0-9A-Fa-f]{1,4}:){1,7}:",
            r"|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
            r"|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}",
            r"|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}",
            r"|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}",
            r"|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}",
            r"|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}",
            r"|:((:[0-9A-Fa-f]{1,4}){1,7}|:)",
            r"|::([Ff]{4}(:0{1,4})?:)?",
            ipv4!(),
            r"|([0-9A-Fa-f]{1,4}:){1,4}:",
            ipv4!(),
            r"|([0-9A-Fa-f]{1,4}:){6}",
            ipv4!(),
            ")"
        )
    };
}

/// A port number, 0 to 65535 (leading zeros allowed).
macro_rules! port {
    () => {
        r"([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    };
}

/// What an IP address the services accept looks like: IPv4 or IPv6 ([`check_ip_address`]).
pub const IP_ADDRESS_PATTERN: &str = concat!("^(", ipv4!(), "|", ipv6!(), ")$");

/// What a traffic filter's address looks like: an IPv4 or IPv6 address, a prefix (address and
/// length) or a range of two addresses of one family (`first-last`).
pub const FILTER_ADDRESS_PATTERN: &str = concat!(
    "^(",
    ipv4!(),
    r"(/(3[0-2]|[12]?[0-9]))?|",
    ipv6!(),
    r"(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?|",
    ipv4!(),
    "-",
    ipv4!(),
    "|",
    ipv6!(),
    "-",
    ipv6!(),
    ")$"
);

/// What a traffic filter's port looks like: a port or a range of ports (`first-last`).
pub const FILTER_PORT_PATTERN: &str = concat!("^", port!(), "(-", port!(), ")?$");

/// True if `value` matches `pattern` (one of this module's patterns, compiled once per call
/// site's `cell`).
fn matches(cell: &std::sync::OnceLock<Option<regex::Regex>>, pattern: &str, value: &str) -> bool {
    cell.get_or_init(|| regex::Regex::new(pattern).ok())
        .as_ref()
        .is_some_and(|r| r.is_match(value))
}

/// The IP address `value`, if it is one in the form [`IP_ADDRESS_PATTERN`] states.
pub fn check_ip_address(value: &str) -> Option<std::net::IpAddr> {
    static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    matches(&PATTERN, IP_ADDRESS_PATTERN, value)
        .then(|| value.parse().ok())
        .flatten()
}

/// True if `value` is a traffic filter address in the form [`FILTER_ADDRESS_PATTERN`] states.
pub fn is_filter_address(value: &str) -> bool {
    static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    matches(&PATTERN, FILTER_ADDRESS_PATTERN, value)
}

/// True if `value` is a traffic filter port in the form [`FILTER_PORT_PATTERN`] states.
pub fn is_filter_port(value: &str) -> bool {
    static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    matches(&PATTERN, FILTER_PORT_PATTERN, value)
}

/// What a packet label looks like: an IPv6 flow label (20 bits), in decimal or `0x` hex.
pub const PACKET_LABEL_PATTERN: &str = concat!(
    r"^(0[xX][0-9A-Fa-f]{1,5}|[0-9]{1,6}|10[0-3][0-9]{4}|104[0-7][0-9]{3}",
    r"|1048[0-4][0-9]{2}|10485[0-6][0-9]|104857[0-5])$"
);

/// The IPv6 flow label a packet label ([`PACKET_LABEL_PATTERN`]) names.
pub fn flow_label(value: &str) -> Option<u32> {
    static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    if !matches(&PATTERN, PACKET_LABEL_PATTERN, value) {
        return None;
    }
    match value.get(..2) {
        Some("0x" | "0X") => u32::from_str_radix(&value[2..], 16).ok(),
        _ => value.parse().ok(),
    }
}

/// The schema of a traffic filter's optional list of packet labels ([`PACKET_LABEL_PATTERN`]).
pub fn filter_packet_labels_schema() -> utoipa::openapi::Schema {
    optional_list_of(string_schema(PACKET_LABEL_PATTERN))
}

/// The schema of a traffic filter's optional list of URIs ([`text_schema`] of [`MAX_URI`]).
pub fn filter_uris_schema() -> utoipa::openapi::Schema {
    optional_list_of(text_schema(MAX_URI))
}

fn string_schema(pattern: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .build()
}

/// The schema of an IPv4 or IPv6 address ([`IP_ADDRESS_PATTERN`]).
pub fn ip_address_schema() -> utoipa::openapi::Object {
    string_schema(IP_ADDRESS_PATTERN)
}

/// The schema of a traffic filter's optional list of addresses ([`FILTER_ADDRESS_PATTERN`]).
pub fn filter_addresses_schema() -> utoipa::openapi::Schema {
    optional_list_of(string_schema(FILTER_ADDRESS_PATTERN))
}

/// The schema of a traffic filter's optional list of ports ([`FILTER_PORT_PATTERN`]).
pub fn filter_ports_schema() -> utoipa::openapi::Schema {
    optional_list_of(string_schema(FILTER_PORT_PATTERN))
}

fn optional_list_of(item: utoipa::openapi::Object) -> utoipa::openapi::Schema {
    let item = serde_json::to_value(item).unwrap_or_default();
    schema_of(serde_json::json!({"type": ["array", "null"], "items": item}))
}

/// The schema of an internally tagged union of structs (serde's `tag = "…"`), as serde reads it:
/// one closed object per variant, with the variant's members and the tag naming it. (utoipa's
/// derive would combine each variant's closed object with the tag in an `allOf`, which no value
/// can satisfy.)
pub fn tagged_union<const N: usize>(
    tag: &str,
    variants: [(&str, utoipa::openapi::RefOr<utoipa::openapi::Schema>); N],
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, OneOfBuilder, Schema};
    let tag_object = |name: &str| {
        utoipa::openapi::ObjectBuilder::new()
            .property(tag, single_value_schema(name))
            .required(tag)
            .build()
    };
    let items = variants.into_iter().map(|(name, schema)| match schema {
        RefOr::T(Schema::Object(mut object)) => {
            object
                .properties
                .insert(tag.to_owned(), single_value_schema(name).into());
            object.required.push(tag.to_owned());
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            Schema::Object(object)
        }
        // not an inline struct: its schema and the tag
        other => Schema::AllOf(
            AllOfBuilder::new()
                .item(other)
                .item(tag_object(name))
                .build(),
        ),
    });
    RefOr::T(Schema::OneOf(
        items
            .fold(OneOfBuilder::new(), OneOfBuilder::item)
            .description(Some(description))
            .build(),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings made of address-like pieces, deterministic: enough of them match the patterns.
    fn address_like() -> impl Iterator<Item = String> {
        const PIECES: [&str; 14] = [
            "0", "1", "ab", "ffff", "FFFF", "1234", "::", ":", ".", "1.2.3.4", "255", "256", "/",
            "-",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        (0..30_000).map(move |_| {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for i in 0..(state % 12) {
                s.push_str(PIECES[((state >> (4 * i + 8)) % 14) as usize]);
            }
            s
        })
    }

    #[test]
    fn what_the_address_patterns_admit_parses() {
        let (mut addresses, mut filters, mut ports) = (0, 0, 0);
        let address = regex::Regex::new(IP_ADDRESS_PATTERN).unwrap();
        for s in address_like() {
            if address.is_match(&s) {
                assert!(s.parse::<std::net::IpAddr>().is_ok(), "{s} does not parse");
                addresses += 1;
            }
            if is_filter_address(&s) {
                filters += 1;
                let parses = |a: &str| a.parse::<std::net::IpAddr>().is_ok();
                let ok = match (s.split_once('/'), s.split_once('-')) {
                    (Some((a, len)), _) => parses(a) && len.parse::<u8>().is_ok(),
                    (None, Some((a, b))) => parses(a) && parses(b),
                    (None, None) => parses(&s),
                };
                assert!(
                    ok,
                    "{s} matches the filter address pattern but does not parse"
                );
            }
            if is_filter_port(&s) {
                ports += 1;
                assert!(s.split('-').all(|p| p.parse::<u16>().is_ok()), "{s}");
            }
        }
        // the check is not vacuous
        assert!(
            addresses > 100 && filters > addresses && ports > 100,
            "{addresses} {filters} {ports}"
        );
        for ok in [
            "10.0.0.1",
            "::",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:10.1.2.3",
            "1:2:3:4:5:6:7:8",
        ] {
            assert!(check_ip_address(ok).is_some(), "{ok}");
        }
        for bad in [
            "010.0.0.1",
            "1.2.3",
            "::1%eth0",
            "1:2:3:4:5:6:7:8:9",
            "10.0.0.1\n",
            "",
        ] {
            assert!(check_ip_address(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn written_schemas_keep_every_keyword() {
        for schema in [
            filter_addresses_schema(),
            filter_ports_schema(),
            utoipa::openapi::Schema::Object(ip_address_schema()),
        ] {
            let text = serde_json::to_string(&schema).unwrap();
            assert!(text.contains("pattern"), "{text}");
        }
    }
}
