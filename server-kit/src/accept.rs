//! Content negotiation (RFC 9110 section 12.5.1): which of the representations a resource
//! offers the client's `Accept` takes, and the answer of 406 to a GET whose only
//! representation the client excludes instead of sending it anyway.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::problem::ApiError;

/// One media range of an `Accept` header with its weight.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f32,
}

impl MediaRange<'_> {
    /// How specifically this range names `media_type` (type/subtype), if it does: 2 for an
    /// exact match, 1 for `type/*`, 0 for `*/*`.
    fn specificity(&self, media_type: &str) -> Option<u8> {
        let (kind, subtype) = media_type.split_once('/')?;
        match (self.kind, self.subtype) {
            ("*", "*") => Some(0),
            (k, "*") if k.eq_ignore_ascii_case(kind) => Some(1),
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => Some(2),
            _ => None,
        }
    }
}

/// The media ranges of an `Accept` value; a range that cannot be read is skipped.
fn ranges(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let (kind, subtype) = parts.next()?.trim().split_once('/')?;
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())?;
            (!kind.is_empty() && !subtype.is_empty()).then_some(MediaRange {
                kind: kind.trim(),
                subtype: subtype.trim(),
                q: q.clamp(0.0, 1.0),
            })
        })
        .collect()
}

/// The weight `accept` gives `media_type` (the most specific matching range's q; 0 when none
/// matches). No header, or one with no readable range, accepts everything.
pub fn quality(accept: Option<&str>, media_type: &str) -> f32 {
    let Some(accept) = accept else { return 1.0 };
    let ranges = ranges(accept);
    if ranges.is_empty() {
        return 1.0;
    }
    let essence = media_type.split(';').next().unwrap_or("").trim();
    ranges
        .iter()
        .filter_map(|r| r.specificity(essence).map(|s| (s, r.q)))
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map_or(0.0, |(_, q)| q)
}

fn accept_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

/// The representation of `offered` (in the server's order of preference) the request's
/// `Accept` prefers, or 406 naming what is offered.
pub fn negotiate<'a>(headers: &HeaderMap, offered: &[&'a str]) -> Result<&'a str, ApiError> {
    let accept = accept_header(headers);
    let mut best: Option<(&'a str, f32)> = None;
    for &media_type in offered {
        let q = quality(accept, media_type);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((media_type, q));
        }
    }
    best.map(|(m, _)| m).ok_or_else(|| not_acceptable(offered))
}

fn not_acceptable(offered: &[&str]) -> ApiError {
    ApiError::NotAcceptable(format!(
        "this resource is available as {} only, which the Accept header excludes",
        offered.join(" or ")
    ))
}

/// What a GET or HEAD sent with `accept` is answered: `response` when it failed or the client
/// takes its media type, 406 when the client's `Accept` excludes it. Errors pass, as
/// `application/problem+json`.
pub fn acceptable(accept: Option<&HeaderValue>, response: Response) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let accept = accept.and_then(|v| v.to_str().ok());
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match content_type {
        Some(ct) if quality(accept, ct) <= 0.0 => {
            let essence = ct.split(';').next().unwrap_or(ct).trim();
            not_acceptable(&[essence]).into_response()
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        let zip = "application/zip";
        assert_eq!(quality(None, zip), 1.0);
        assert_eq!(quality(Some(""), zip), 1.0);
        assert_eq!(quality(Some("application/json"), zip), 0.0);
        assert_eq!(quality(Some("application/*"), zip), 1.0);
        assert_eq!(quality(Some("*/*;q=0.1"), zip), 0.1);
        assert_eq!(quality(Some("application/zip;q=0, */*"), zip), 0.0);
        assert_eq!(quality(Some("application/ZIP ; q=0.5"), zip), 0.5);
        assert_eq!(
            quality(
                Some("text/plain, application/json"),
                "application/json; charset=utf-8"
            ),
            1.0
        );
    }

    #[test]
    fn negotiation() {
        let mut h = HeaderMap::new();
        let offered = ["application/json", "text/plain"];
        assert_eq!(negotiate(&h, &offered).unwrap(), "application/json");
        h.insert(header::ACCEPT, "text/plain".parse().unwrap());
        assert_eq!(negotiate(&h, &offered).unwrap(), "text/plain");
        h.insert(
            header::ACCEPT,
            "application/json;q=0.5, text/*".parse().unwrap(),
        );
        assert_eq!(negotiate(&h, &offered).unwrap(), "text/plain");
        h.insert(header::ACCEPT, "image/png".parse().unwrap());
        let e = negotiate(&h, &offered).unwrap_err();
        assert_eq!(e.status(), 406);
        assert!(e.to_string().contains("application/json or text/plain"));
    }
}
