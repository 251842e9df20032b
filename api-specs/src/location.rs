//! Where an application instance may run (`LocationConstraints`, ETSI MEC 010-2 6.2.2.2): a
//! country, civic address elements (RFC 4776 CAtypes) or a geographic area (an RFC 7946
//! GeoJSON Polygon), and, as a mecplane extension, the users' position for latency-aware
//! placement.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::inventory::GeoPoint;

/// Most rings a polygon may have (its exterior and holes).
pub const MAX_RINGS: usize = 16;
/// Most positions a polygon may have, all rings together.
pub const MAX_POSITIONS: usize = 4096;
/// Most civic address elements in a constraint or a site's address.
pub const MAX_CIVIC_ELEMENTS: usize = 32;

/// A civic address element (`CivicAddressElement`): a CAtype of RFC 4776 section 3.4 (e.g. 1
/// for the national subdivision, 3 for the city) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CivicAddressElement {
    /// The CAtype.
    #[schema(maximum = 65535)]
    pub ca_type: u16,
    /// Its value.
    #[schema(schema_with = crate::common::name_schema)]
    pub ca_value: String,
}

/// A GeoJSON Polygon (RFC 7946 3.1.6): the exterior ring first, holes after it; positions are
/// `[longitude, latitude]` (an altitude is accepted and ignored). The ETSI OpenAPI types the
/// attribute as a string, so the polygon's JSON text is accepted as well as the object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolygonForm", into = "GeoJsonPolygon")]
pub struct Polygon {
    rings: Vec<Vec<[f64; 2]>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PolygonForm {
    Object(GeoJsonPolygon),
    Text(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoJsonPolygon {
    #[serde(rename = "type")]
    kind: String,
    coordinates: Vec<Vec<Vec<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bbox: Option<Vec<f64>>,
}

impl TryFrom<PolygonForm> for Polygon {
    type Error = String;

    fn try_from(form: PolygonForm) -> Result<Self, String> {
        let geojson = match form {
            PolygonForm::Object(o) => o,
            PolygonForm::Text(text) => {
                if text.len() > MAX_POSITIONS * 64 {
                    return Err("area: too long".into());
                }
                serde_json::from_str(&text)
                    .map_err(|e| format!("area: not a GeoJSON Polygon: {e}"))?
            }
        };
        if geojson.kind != "Polygon" {
            return Err(format!("area: type is {:?}, not \"Polygon\"", geojson.kind));
        }
        if geojson.coordinates.is_empty() || geojson.coordinates.len() > MAX_RINGS {
            return Err(format!("area: 1 to {MAX_RINGS} linear rings"));
        }
        let positions: usize = geojson.coordinates.iter().map(Vec::len).sum();
        if positions > MAX_POSITIONS {
            return Err(format!("area: at most {MAX_POSITIONS} positions"));
        }
        let mut rings = Vec::with_capacity(geojson.coordinates.len());
        for (r, ring) in geojson.coordinates.iter().enumerate() {
            if ring.len() < 4 {
                return Err(format!("area: ring {r} has fewer than four positions"));
            }
            let mut points = Vec::with_capacity(ring.len());
            for position in ring {
                let (lon, lat) = match position.as_slice() {
                    [lon, lat] | [lon, lat, _] => (*lon, *lat),
                    _ => {
                        return Err(format!(
                            "area: ring {r}: a position is [longitude, latitude] (and an altitude)"
                        ));
                    }
                };
                if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                    return Err(format!(
                        "area: ring {r}: position [{lon}, {lat}] out of range"
                    ));
                }
                points.push([lon, lat]);
            }
            if points.first() != points.last() {
                return Err(format!(
                    "area: ring {r} is not closed (its first and last positions differ)"
                ));
            }
            rings.push(points);
        }
        Ok(Self { rings })
    }
}

impl From<Polygon> for GeoJsonPolygon {
    fn from(p: Polygon) -> Self {
        Self {
            kind: "Polygon".into(),
            coordinates: p
                .rings
                .into_iter()
                .map(|ring| ring.into_iter().map(Vec::from).collect())
                .collect(),
            bbox: None,
        }
    }
}

/// The schema of an optional [`LocationConstraints`] with the rule its members' schemas cannot
/// state: `latitude` and `longitude` are given together (both, or neither).
pub fn optional_location_constraints_schema() -> utoipa::openapi::Schema {
    crate::common::schema_of(serde_json::json!({
        "oneOf": [
            {"type": "null"},
            {
                "allOf": [
                    {"$ref": "#/components/schemas/LocationConstraints"},
                    {
                        "anyOf": [
                            {"type": "object", "required": ["latitude", "longitude"]},
                            {
                                "type": "object",
                                "properties": {
                                    "area": {"type": ["object", "string", "null"]},
                                    "civicAddressElement": {"type": "array"},
                                    "countryCode": {"type": ["string", "null"]},
                                },
                                "additionalProperties": false,
                            },
                        ],
                    },
                ],
            },
        ],
    }))
}

/// The schema of `area`: the Polygon object (the bounds [`Polygon`] checks, but for its rings'
/// closure and [`MAX_POSITIONS`]), or its JSON text (accepted as well), or null.
fn area_schema() -> utoipa::openapi::Schema {
    let position = serde_json::json!({
        "type": "array",
        "prefixItems": [
            {"type": "number", "minimum": -180, "maximum": 180},
            {"type": "number", "minimum": -90, "maximum": 90},
            {"type": "number"},
        ],
        "items": false,
        "minItems": 2,
    });
    crate::common::schema_of(serde_json::json!({
        "description": "Only sites inside this area: a GeoJSON Polygon (RFC 7946: each linear ring \
            closed, its last position its first), as an object or as its JSON text (absent when \
            civicAddressElement is given).",
        "oneOf": [
            {"type": "null"},
            {"type": "string", "maxLength": MAX_POSITIONS * 64},
            {
                "type": "object",
                "required": ["type", "coordinates"],
                "properties": {
                    "type": {"type": "string", "enum": ["Polygon"]},
                    "coordinates": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_RINGS,
                        "items": {"type": "array", "minItems": 4, "items": position},
                    },
                    "bbox": {"type": ["array", "null"], "items": {"type": "number"}},
                },
                "additionalProperties": false,
            },
        ],
    }))
}

impl Polygon {
    /// Whether `point` lies inside the exterior ring and outside every hole (even-odd rule on
    /// longitude and latitude as plane coordinates, as RFC 7946 3.1.9 treats edges).
    pub fn contains(&self, point: &GeoPoint) -> bool {
        let inside = |ring: &[[f64; 2]]| {
            let (x, y) = (point.longitude, point.latitude);
            let mut inside = false;
            for edge in ring.windows(2) {
                let ([x1, y1], [x2, y2]) = (edge[0], edge[1]);
                if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
                    inside = !inside;
                }
            }
            inside
        };
        let mut rings = self.rings.iter();
        rings.next().is_some_and(|exterior| inside(exterior)) && !rings.any(|hole| inside(hole))
    }
}

/// Where an instance may run (`LocationConstraints`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationConstraints {
    /// ISO 3166-1 alpha-2 country code in capitals: only sites in this country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country_code: Option<String>,
    /// Only sites whose civic address has every one of these elements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub civic_address_element: Vec<CivicAddressElement>,
    /// Only sites inside this area, a GeoJSON Polygon (absent when civicAddressElement is
    /// given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = area_schema)]
    pub area: Option<Polygon>,
    /// Latitude of the users (degrees; mecplane extension, with `longitude`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, required = false, minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    /// Longitude of the users (degrees; mecplane extension, with `latitude`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, required = false, minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
}

impl LocationConstraints {
    /// The users' position, when given.
    pub fn users(&self) -> Option<GeoPoint> {
        Some(GeoPoint {
            latitude: self.latitude?,
            longitude: self.longitude?,
        })
    }

    /// Checks the constraint as MEC 010-2 states it: a country code unless an area (or, as the
    /// extension, the users' position) is given; an area and civic address elements not both.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cc) = &self.country_code {
            check_country_code(cc).map_err(|e| format!("locationConstraints.{e}"))?;
        }
        match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err("locationConstraints: latitude or longitude out of range".into());
                }
            }
            (None, None) => {}
            _ => {
                return Err(
                    "locationConstraints: latitude and longitude are given together".into(),
                );
            }
        }
        if self.area.is_some() && !self.civic_address_element.is_empty() {
            return Err(
                "locationConstraints: area shall be absent when civicAddressElement is present"
                    .into(),
            );
        }
        if self.country_code.is_none() && self.area.is_none() && self.users().is_none() {
            return Err("locationConstraints: countryCode is required when area is absent".into());
        }
        check_civic_address(
            "locationConstraints.civicAddressElement",
            &self.civic_address_element,
        )
    }

    /// Whether a site in `country` with `civic` address at `location` meets the constraint
    /// (the users' position constrains latency, not where the site is); the reason otherwise.
    pub fn admits(
        &self,
        country: Option<&str>,
        civic: &[CivicAddressElement],
        location: &GeoPoint,
    ) -> Result<(), Mismatch> {
        if let Some(cc) = &self.country_code
            && country.is_none_or(|c| !c.eq_ignore_ascii_case(cc))
        {
            return Err(Mismatch::Country);
        }
        let has = |want: &CivicAddressElement| {
            civic.iter().any(|e| {
                e.ca_type == want.ca_type
                    && e.ca_value.trim().eq_ignore_ascii_case(want.ca_value.trim())
            })
        };
        if !self.civic_address_element.iter().all(has) {
            return Err(Mismatch::CivicAddress);
        }
        if self.area.as_ref().is_some_and(|a| !a.contains(location)) {
            return Err(Mismatch::Area);
        }
        Ok(())
    }
}

/// Why a site does not meet a [`LocationConstraints`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Another country (or none recorded).
    Country,
    /// Its civic address lacks a requested element.
    CivicAddress,
    /// Outside the area.
    Area,
}

/// Checks an ISO 3166-1 alpha-2 code (two capital letters).
pub fn check_country_code(cc: &str) -> Result<(), String> {
    if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("countryCode: two capital letters (ISO 3166-1 alpha-2)".into())
    }
}

/// Checks civic address elements: at most [`MAX_CIVIC_ELEMENTS`], values of bounded length.
pub fn check_civic_address(field: &str, elements: &[CivicAddressElement]) -> Result<(), String> {
    if elements.len() > MAX_CIVIC_ELEMENTS {
        return Err(format!("{field}: at most {MAX_CIVIC_ELEMENTS} elements"));
    }
    elements
        .iter()
        .try_for_each(|e| crate::common::check_text(field, &e.ca_value, crate::common::MAX_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_bounds_are_the_checked_ones() {
        use utoipa::PartialSchema;
        let constraints = serde_json::to_value(LocationConstraints::schema()).unwrap();
        assert_eq!(
            constraints["properties"]["civicAddressElement"]["maxItems"],
            MAX_CIVIC_ELEMENTS
        );
    }

    fn square() -> serde_json::Value {
        // around Paris, with a hole around its centre
        serde_json::json!({"type": "Polygon", "coordinates": [
            [[2.0, 48.5], [2.7, 48.5], [2.7, 49.1], [2.0, 49.1], [2.0, 48.5]],
            [[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.9], [2.3, 48.8]]
        ]})
    }

    fn at(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint {
            latitude,
            longitude,
        }
    }

    #[test]
    fn polygons_from_objects_and_text_contain_what_they_should() {
        let object: Polygon = serde_json::from_value(square()).unwrap();
        let text: Polygon =
            serde_json::from_value(serde_json::json!(square().to_string())).unwrap();
        assert_eq!(object, text);
        assert!(object.contains(&at(48.6, 2.1)));
        assert!(!object.contains(&at(48.85, 2.35)), "in the hole");
        assert!(!object.contains(&at(45.76, 4.84)), "Lyon");
        assert_eq!(serde_json::to_value(&object).unwrap()["type"], "Polygon");
    }

    #[test]
    fn bad_polygons_say_why() {
        for (bad, why) in [
            (
                serde_json::json!({"type": "Point", "coordinates": []}),
                "not \"Polygon\"",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": []}),
                "linear rings",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}),
                "fewer than four",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
                "not closed",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [1], [1, 1], [0, 0]]]}),
                "[longitude, latitude]",
            ),
            (
                serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [1, 1], [0, 0]]]}),
                "out of range",
            ),
            (
                serde_json::json!("{\"type\": \"Polygon\""),
                "not a GeoJSON Polygon",
            ),
        ] {
            let e = serde_json::from_value::<Polygon>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
        let ring: Vec<[f64; 2]> = (0..MAX_POSITIONS + 1)
            .map(|i| [0.0, (i % 2) as f64])
            .collect();
        let big = serde_json::json!({"type": "Polygon", "coordinates": [ring]});
        assert!(serde_json::from_value::<Polygon>(big).is_err());
    }

    #[test]
    fn constraints_follow_mec_010_2() {
        let parse =
            |v: serde_json::Value| serde_json::from_value::<LocationConstraints>(v).unwrap();
        assert!(
            parse(serde_json::json!({"countryCode": "FR"}))
                .validate()
                .is_ok()
        );
        assert!(
            parse(serde_json::json!({"area": square()}))
                .validate()
                .is_ok()
        );
        assert!(
            parse(serde_json::json!({"latitude": 48.8, "longitude": 2.3}))
                .validate()
                .is_ok()
        );
        for (bad, why) in [
            (serde_json::json!({"countryCode": "fr"}), "capital"),
            (
                serde_json::json!({"civicAddressElement": [{"caType": 3, "caValue": "Paris"}]}),
                "countryCode is required",
            ),
            (
                serde_json::json!({"countryCode": "FR", "area": square(), "civicAddressElement": [{"caType": 3, "caValue": "Paris"}]}),
                "shall be absent",
            ),
            (serde_json::json!({"latitude": 48.8}), "together"),
        ] {
            let e = parse(bad).validate().unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        let paris = vec![CivicAddressElement {
            ca_type: 3,
            ca_value: "Paris".into(),
        }];
        let c = parse(
            serde_json::json!({"countryCode": "FR", "civicAddressElement": [{"caType": 3, "caValue": "paris"}]}),
        );
        assert_eq!(c.admits(Some("FR"), &paris, &at(48.86, 2.35)), Ok(()));
        assert_eq!(
            c.admits(Some("DE"), &paris, &at(48.86, 2.35)),
            Err(Mismatch::Country)
        );
        assert_eq!(
            c.admits(Some("FR"), &[], &at(48.86, 2.35)),
            Err(Mismatch::CivicAddress)
        );
        let a = parse(serde_json::json!({"area": square()}));
        assert_eq!(a.admits(None, &[], &at(45.76, 4.84)), Err(Mismatch::Area));
    }
}
