//! Messages to and from proto3 JSON (the serde impls `cezone-proto` generates with pbjson): a
//! request body, a query string typed by the message's descriptor, an answer.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prost_types::field_descriptor_proto::{Label, Type};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::descriptors::{Index, index};
use super::errors::GatewayError;

/// Reads a request body; an empty body is the empty message. An error names the field at
/// fault by its JSON path.
pub fn from_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end()
        .map_err(|e| GatewayError::bad("body", format!("not one JSON object: {e}")))?;
    Ok(value)
}

/// Reads a message from a JSON value built by the gateway (query string and path).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, GatewayError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> GatewayError {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    // The path ends at the field at fault (an unknown one included); at the top level an
    // unknown field is named by the message.
    let field = match path.as_str() {
        "." => inner
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map_or_else(|| "body".to_string(), |(name, _)| name.to_string()),
        p => p.to_string(),
    };
    GatewayError::bad(field, inner)
}

/// A message as a JSON answer.
pub fn answer<T: Serialize>(message: &T) -> Response {
    match to_json(message) {
        Ok(bytes) => answer_bytes(bytes),
        Err(e) => e.into_response(),
    }
}

/// A message written as JSON.
pub fn to_json<T: Serialize>(message: &T) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(message).map(Bytes::from).map_err(|e| {
        // Generated serializers do not fail on generated messages; if one ever does it is a
        // defect here, not the caller's.
        tracing::error!(error = %e, "a message could not be written as JSON");
        GatewayError::status("web", tonic::Status::internal("internal error"))
    })
}

/// JSON already written, as an answer.
pub fn answer_bytes(json: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        json,
    )
        .into_response()
}

/// The JSON object for `message` (full name) from query parameters and path parameters: each
/// name is a field's JSON or proto name, nested fields dotted (`page.pageSize=50`), repeated
/// fields given once per value. Values are typed by the field: booleans must be `true` or
/// `false`; numbers and enum names pass as strings, which the proto3 JSON mapping accepts.
pub fn query_object(message: &str, pairs: &[(String, String)]) -> Result<Value, GatewayError> {
    let ix = index();
    let mut root = Map::new();
    for (key, raw) in pairs {
        set(ix, message, &mut root, key, key, raw)?;
    }
    Ok(Value::Object(root))
}

fn set(
    ix: &Index,
    message: &str,
    object: &mut Map<String, Value>,
    full_key: &str,
    key: &str,
    raw: &str,
) -> Result<(), GatewayError> {
    let Some(descriptor) = ix.message(message) else {
        return Err(GatewayError::bad(full_key, "not a field of this request"));
    };
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    let Some(field) = ix.field(descriptor, head) else {
        return Err(GatewayError::bad(
            full_key,
            format!("not a field of {}", message.trim_start_matches('.')),
        ));
    };
    let name = field.json_name().to_string();
    let repeated = field.label() == Label::Repeated;
    match (field.r#type(), rest) {
        (Type::Message, Some(rest)) if !repeated => {
            let slot = object
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(inner) = slot else {
                return Err(GatewayError::bad(full_key, "given twice"));
            };
            set(ix, field.type_name(), inner, full_key, rest, raw)
        }
        (Type::Message | Type::Group, _) => Err(GatewayError::bad(
            full_key,
            "a message cannot be given in the query string: name its fields (e.g. page.pageSize) \
             or send the request as a JSON body with POST",
        )),
        (_, Some(_)) => Err(GatewayError::bad(
            full_key,
            format!("{head} has no fields of its own"),
        )),
        (ty, None) => {
            let value = match ty {
                Type::Bool => match raw {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" | "" => Value::Bool(false),
                    other => {
                        return Err(GatewayError::bad(
                            full_key,
                            format!("'{other}' is not true or false"),
                        ));
                    }
                },
                _ => Value::String(raw.to_string()),
            };
            if repeated {
                let slot = object
                    .entry(name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = slot {
                    items.push(value);
                }
            } else if object.insert(name, value).is_some() {
                return Err(GatewayError::bad(full_key, "given more than once"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cezone_proto::scoring::v1 as ps;
    use cezone_proto::surveys::v1 as psv;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_query_string_becomes_the_message() {
        let v = query_object(
            "cezone.surveys.v1.ListStatisticsRequest",
            &pairs(&[
                ("orgUnit", "nanhai"),
                ("period", "2014"),
                ("all_versions", "true"),
                ("page.pageSize", "2"),
                ("page.page_token", "abc"),
            ]),
        )
        .unwrap();
        let m: psv::ListStatisticsRequest = from_value(v).unwrap();
        assert_eq!(m.org_unit, "nanhai");
        assert_eq!(m.period, 2014);
        assert!(m.all_versions);
        let page = m.page.unwrap();
        assert_eq!((page.page_size, page.page_token.as_str()), (2, "abc"));

        let v = query_object(
            "cezone.scoring.v1.GetScoresRequest",
            &pairs(&[("items", "1"), ("items", "1.1"), ("explain", "true")]),
        )
        .unwrap();
        let m: ps::GetScoresRequest = from_value(v).unwrap();
        assert_eq!(m.items, vec!["1", "1.1"]);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let e = |p: &[(&str, &str)]| {
            let r = query_object("cezone.surveys.v1.ListStatisticsRequest", &pairs(p))
                .and_then(from_value::<psv::ListStatisticsRequest>);
            match r {
                Err(GatewayError::BadRequest { field, description }) => (field, description),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(e(&[("orgunit", "x")]).0, "orgunit");
        assert_eq!(e(&[("allVersions", "yes")]).0, "allVersions");
        assert_eq!(e(&[("page", "2")]).0, "page");
        let (field, why) = e(&[("period", "soon")]);
        assert_eq!(field, "period");
        assert!(!why.is_empty());
    }

    #[test]
    fn bodies_are_proto3_json_and_misspelt_fields_are_refused() {
        let m: psv::RecordStatisticsRequest = from_body(
            br#"{"statistics":[{"orgUnit":"nanhai","metric":"m","period":2014,"value":"12"}],
                 "dryRun":true}"#,
        )
        .unwrap();
        assert_eq!(m.statistics[0].value, 12);
        assert!(m.dry_run);
        let m: psv::RecordStatisticsRequest = from_body(b"").unwrap();
        assert!(m.statistics.is_empty());
        match from_body::<psv::RecordStatisticsRequest>(br#"{"statistics":[{"orgUnitt":"x"}]}"#) {
            Err(GatewayError::BadRequest { field, .. }) => {
                assert_eq!(field, "statistics[0].orgUnitt")
            }
            other => panic!("{other:?}"),
        }
        match from_body::<psv::RecordStatisticsRequest>(br#"{"statistics":[{"period":"x"}]}"#) {
            Err(GatewayError::BadRequest { field, .. }) => {
                assert_eq!(field, "statistics[0].period")
            }
            other => panic!("{other:?}"),
        }
    }
}
