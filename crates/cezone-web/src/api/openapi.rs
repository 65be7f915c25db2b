//! The OpenAPI 3 document of the API (`GET /api/v1/openapi.json`), generated from the route
//! table and the services' protobuf descriptors: every route a path, every message a schema in
//! its proto3 JSON form, the comments of the protos as descriptions.

use std::collections::{BTreeMap, BTreeSet};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};
use serde_json::{Map, Value, json};

use super::descriptors::{Index, index};
use super::routes::{Endpoint, Shape};

/// The error body's schema name.
const ERROR: &str = "cezone.api.v1.Error";

/// The document for `endpoints`.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let ix = index();
    let mut schemas = BTreeSet::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for e in endpoints {
        let op = operation(ix, e, &mut schemas);
        let verb = e.shape.method().as_str().to_ascii_lowercase();
        paths
            // axum's `{param}` is OpenAPI's template syntax too.
            .entry(e.path.clone())
            .or_default()
            .insert(verb, op);
    }
    let mut components = Map::new();
    let mut todo: Vec<String> = schemas.into_iter().collect();
    let mut done = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let (schema, refs) = schema(ix, &name);
        todo.extend(refs);
        components.insert(name, schema);
    }
    components.insert(ERROR.to_string(), error_schema());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cezone HTTP/JSON API",
            "version": "v1",
            "description": "The operations of the registry, evidence, surveys, scoring and \
                scheduler services over HTTP and JSON: the same operations, tokens and errors as \
                their gRPC interfaces. Messages use the proto3 JSON mapping (lowerCamelCase \
                names, enums by name, 64-bit integers as strings, bytes in base64). Every \
                operation `POST /api/v1/{service}/{Method}` takes its request message as a JSON \
                body; reads also answer `GET` with the request's fields in the query string, \
                nested fields dotted (`page.pageSize=50`)."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "tags": Value::Array(super::Service::ALL.iter().map(|s| json!({
            "name": s.segment(),
            "description": ix.comments.get(s.grpc_name()).cloned()
                .unwrap_or_else(|| s.grpc_name().to_string()),
        })).collect()),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The same token the gRPC services take."
                }
            },
            "schemas": components,
        }
    })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", name.trim_start_matches('.')) })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn operation(ix: &Index, e: &Endpoint, schemas: &mut BTreeSet<String>) -> Value {
    let service = e.service.grpc_name();
    let method = ix
        .method(service, e.method)
        .expect("the route table is checked against the descriptors");
    let output = method.output_type().trim_start_matches('.').to_string();
    let grpc = format!("{service}/{}", e.method);
    let mut description = ix.comments.get(&grpc).cloned().unwrap_or_default();
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&format!("gRPC: `{grpc}`."));
    let mut op = Map::new();
    op.insert("tags".into(), json!([e.service.segment()]));
    op.insert("summary".into(), json!(e.method));
    op.insert("description".into(), json!(description));
    let verb = e.shape.method().as_str().to_ascii_lowercase();
    let id = e
        .path
        .trim_start_matches("/api/v1/")
        .replace(['{', '}'], "")
        .replace('/', "_");
    op.insert("operationId".into(), json!(format!("{verb}_{id}")));
    // Signing in and refreshing take no token (the services let exactly these through).
    if cezone_platform::access::auth::OPEN_METHODS.contains(&format!("/{grpc}").as_str()) {
        op.insert("security".into(), json!([]));
    }

    let mut parameters = Vec::new();
    for p in path_parameters(&e.path) {
        parameters.push(json!({
            "name": p, "in": "path", "required": true, "schema": { "type": "string" },
        }));
    }
    if let Some(q) = e.query {
        let path_params = path_parameters(&e.path);
        query_parameters(ix, q, "", &path_params, &mut parameters, schemas, 0);
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }

    match e.shape {
        Shape::Json => {
            let body = e.body.expect("a JSON route names its body");
            schemas.insert(body.to_string());
            op.insert(
                "requestBody".into(),
                json!({ "required": false, "content": json_content(reference(body)) }),
            );
        }
        Shape::UploadFile => {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "description": "The file, streamed; its Content-Type is the file's unless \
                        contentType is given.",
                    "content": { "application/octet-stream": {
                        "schema": { "type": "string", "format": "binary" } } }
                }),
            );
        }
        Shape::NdjsonIn => {
            let body = e.body.expect("a line route names its lines");
            schemas.insert(body.to_string());
            op.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "description": format!("One {} per line.", body),
                    "content": { "application/x-ndjson": { "schema": reference(body) } }
                }),
            );
        }
        Shape::Query | Shape::DownloadFile | Shape::NdjsonOut => {}
    }

    let ok = match e.shape {
        Shape::DownloadFile => json!({
            "description": "The file, streamed, with its Content-Type, Content-Length, \
                Content-Disposition (its name) and X-Cezone-Sha256 (its SHA-256, hex).",
            "content": { "application/octet-stream": {
                "schema": { "type": "string", "format": "binary" } } }
        }),
        Shape::NdjsonOut => {
            schemas.insert(output.clone());
            json!({
                "description": format!(
                    "One {output} per line as they come; a failure ends the stream with a line \
                     {{\"error\": {ERROR}}}."
                ),
                "content": { "application/x-ndjson": { "schema": reference(&output) } }
            })
        }
        _ => {
            schemas.insert(output.clone());
            json!({ "description": output, "content": json_content(reference(&output)) })
        }
    };
    let ok_code = if e.shape == Shape::UploadFile {
        "201"
    } else {
        "200"
    };
    let error =
        |what: &str| json!({ "description": what, "content": json_content(reference(ERROR)) });
    op.insert(
        "responses".into(),
        json!({
            ok_code: ok,
            "400": error("Bad input (INVALID_ARGUMENT): fieldViolations name each field"),
            "401": error("No token, or a token that is expired or forged (UNAUTHENTICATED)"),
            "403": error("The caller may not do this (PERMISSION_DENIED)"),
            "404": error("Not found (NOT_FOUND)"),
            "409": error("Conflicts with the current state (ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED)"),
            "429": error("A limit reached for now; Retry-After says when to try again (RESOURCE_EXHAUSTED)"),
            "503": error("The service cannot be reached (UNAVAILABLE)"),
            "default": error("Any other failure"),
        }),
    );
    Value::Object(op)
}

fn path_parameters(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// The query parameters of `message`'s fields, nested ones dotted (two levels at most, as
/// `page.pageSize`); fields given in the path are left out.
fn query_parameters(
    ix: &Index,
    message: &str,
    prefix: &str,
    skip: &[String],
    out: &mut Vec<Value>,
    schemas: &mut BTreeSet<String>,
    depth: usize,
) {
    let Some(m) = ix.message(message) else {
        return;
    };
    let full = message.trim_start_matches('.');
    for f in &m.field {
        if prefix.is_empty() && skip.iter().any(|s| s == f.name() || s == f.json_name()) {
            continue;
        }
        let name = format!("{prefix}{}", f.json_name());
        match f.r#type() {
            Type::Message if f.label() != Label::Repeated => {
                if depth < 1 {
                    query_parameters(
                        ix,
                        f.type_name(),
                        &format!("{name}."),
                        skip,
                        out,
                        schemas,
                        depth + 1,
                    );
                }
            }
            Type::Message | Type::Group => {}
            Type::Bytes => {}
            _ => {
                let mut schema = field_schema(f, schemas);
                if f.label() == Label::Repeated {
                    schema = json!({ "type": "array", "items": schema });
                }
                let mut p = json!({ "name": name, "in": "query", "required": false,
                                    "schema": schema });
                if f.label() == Label::Repeated {
                    p["explode"] = json!(true);
                }
                if let Some(c) = ix.comments.get(&format!("{full}.{}", f.name())) {
                    p["description"] = json!(c);
                }
                out.push(p);
            }
        }
    }
}

/// The schema of one message or enum and the names it refers to.
fn schema(ix: &Index, name: &str) -> (Value, BTreeSet<String>) {
    let mut refs = BTreeSet::new();
    if let Some(e) = ix.enums.get(name) {
        let mut s = json!({
            "type": "string",
            "enum": e.value.iter().map(|v| v.name().to_string()).collect::<Vec<_>>(),
        });
        if let Some(c) = ix.comments.get(name) {
            s["description"] = json!(c);
        }
        return (s, refs);
    }
    let Some(m) = ix.message(name) else {
        return (json!({ "type": "object" }), refs);
    };
    (message_schema(ix, name, m, &mut refs), refs)
}

fn message_schema(
    ix: &Index,
    name: &str,
    m: &DescriptorProto,
    refs: &mut BTreeSet<String>,
) -> Value {
    let mut properties = Map::new();
    for f in &m.field {
        let mut s = if ix.is_map(f) {
            let entry = ix.message(f.type_name()).expect("map entries are messages");
            let value = entry
                .field
                .iter()
                .find(|x| x.number() == 2)
                .map(|v| field_schema(v, refs))
                .unwrap_or_else(|| json!({}));
            json!({ "type": "object", "additionalProperties": value })
        } else if f.label() == Label::Repeated {
            json!({ "type": "array", "items": field_schema(f, refs) })
        } else {
            field_schema(f, refs)
        };
        let mut notes = Vec::new();
        if let Some(c) = ix.comments.get(&format!("{name}.{}", f.name())) {
            notes.push(c.clone());
        }
        if let Some(i) = f.oneof_index
            && !f.proto3_optional()
            && let Some(o) = m.oneof_decl.get(i as usize)
        {
            notes.push(format!(
                "One of `{}`: give at most one of its fields.",
                o.name()
            ));
        }
        if !notes.is_empty() {
            // A $ref cannot carry siblings in OpenAPI 3.0: wrap it.
            if s.get("$ref").is_some() {
                s = json!({ "allOf": [s] });
            }
            s["description"] = json!(notes.join("\n\n"));
        }
        properties.insert(f.json_name().to_string(), s);
    }
    let mut s = json!({ "type": "object", "properties": properties,
                        "additionalProperties": false });
    if let Some(c) = ix.comments.get(name) {
        s["description"] = json!(c);
    }
    s
}

/// A singular field's schema in the proto3 JSON mapping.
fn field_schema(f: &FieldDescriptorProto, refs: &mut BTreeSet<String>) -> Value {
    match f.r#type() {
        Type::Double => json!({ "type": "number", "format": "double" }),
        Type::Float => json!({ "type": "number", "format": "float" }),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            json!({ "type": "integer", "format": "int32" })
        }
        Type::Uint32 | Type::Fixed32 => {
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64 })
        }
        // 64-bit integers are strings in proto3 JSON (numbers are accepted too).
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]+$" })
        }
        Type::Uint64 | Type::Fixed64 => {
            json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]+$" })
        }
        Type::Bool => json!({ "type": "boolean" }),
        Type::String => json!({ "type": "string" }),
        Type::Bytes => json!({ "type": "string", "format": "byte" }),
        Type::Enum | Type::Message | Type::Group => {
            let name = f.type_name().trim_start_matches('.').to_string();
            let r = reference(&name);
            refs.insert(name);
            r
        }
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error answer. The HTTP status follows the code: INVALID_ARGUMENT \
            400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS / \
            FAILED_PRECONDITION / ABORTED 409, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, others \
            500.",
        "required": ["code", "message"],
        "properties": {
            "code": { "type": "string", "description": "The gRPC code's name.",
                      "example": "INVALID_ARGUMENT" },
            "message": { "type": "string" },
            "fieldViolations": {
                "type": "array",
                "description": "For bad input: each field at fault and what is wrong with it.",
                "items": {
                    "type": "object",
                    "required": ["field", "description"],
                    "properties": {
                        "field": { "type": "string" },
                        "description": { "type": "string" }
                    }
                }
            },
            "retryAfterSeconds": { "type": "integer", "minimum": 0 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::api;

    #[test]
    fn every_route_is_in_the_document_and_every_reference_resolves() {
        let endpoints = api().endpoints;
        let doc = document(&endpoints);
        for e in &endpoints {
            let verb = e.shape.method().as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][&e.path][&verb].is_object(),
                "{verb} {} is not documented",
                e.path
            );
        }
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referred to, not defined"
            );
        }
        let scores = &schemas["cezone.scoring.v1.OrgUnitScores"]["properties"];
        assert!(scores["orgUnit"].is_object(), "proto3 JSON names: {scores}");
    }
}
