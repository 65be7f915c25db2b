//! The services' protobuf descriptors (the set `cezone-proto` embeds for reflection), indexed
//! by full name: what the query-string reader needs to type a parameter and what the OpenAPI
//! document is generated from.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, ServiceDescriptorProto,
};

/// Every message, enum and service of `cezone.*`, by full name without the leading dot
/// (`cezone.registry.v1.OrgUnit`), with the comments written above them in the protos.
#[derive(Debug, Default)]
pub struct Index {
    pub messages: HashMap<String, DescriptorProto>,
    pub enums: HashMap<String, EnumDescriptorProto>,
    pub services: Vec<(String, ServiceDescriptorProto)>,
    /// Leading comments by `full name` (messages, enums, services) or `full name.field` /
    /// `service full name/Method`.
    pub comments: HashMap<String, String>,
}

/// The index of the embedded descriptor set, built once.
pub fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let set = FileDescriptorSet::decode(cezone_proto::FILE_DESCRIPTOR_SET)
            .expect("cezone-proto embeds a valid descriptor set");
        Index::of(&set)
    })
}

/// Source-location path components (descriptor.proto's field numbers).
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const SERVICE_METHOD: i32 = 2;

impl Index {
    fn of(set: &FileDescriptorSet) -> Index {
        let mut ix = Index::default();
        for file in &set.file {
            let package = file.package();
            let mut by_path: HashMap<Vec<i32>, String> = HashMap::new();
            if let Some(info) = &file.source_code_info {
                for loc in &info.location {
                    if let Some(c) = &loc.leading_comments {
                        let c = c.trim();
                        if !c.is_empty() {
                            by_path.insert(loc.path.clone(), c.to_string());
                        }
                    }
                }
            }
            for (i, m) in file.message_type.iter().enumerate() {
                ix.add_message(package, m, vec![FILE_MESSAGE, i as i32], &by_path);
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                let name = format!("{package}.{}", e.name());
                if let Some(c) = by_path.get(&vec![FILE_ENUM, i as i32]) {
                    ix.comments.insert(name.clone(), c.clone());
                }
                ix.enums.insert(name, e.clone());
            }
            for (i, s) in file.service.iter().enumerate() {
                let name = format!("{package}.{}", s.name());
                if let Some(c) = by_path.get(&vec![FILE_SERVICE, i as i32]) {
                    ix.comments.insert(name.clone(), c.clone());
                }
                for (j, m) in s.method.iter().enumerate() {
                    let path = vec![FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32];
                    if let Some(c) = by_path.get(&path) {
                        ix.comments
                            .insert(format!("{name}/{}", m.name()), c.clone());
                    }
                }
                ix.services.push((name, s.clone()));
            }
        }
        ix
    }

    fn add_message(
        &mut self,
        scope: &str,
        m: &DescriptorProto,
        path: Vec<i32>,
        comments: &HashMap<Vec<i32>, String>,
    ) {
        let name = format!("{scope}.{}", m.name());
        if let Some(c) = comments.get(&path) {
            self.comments.insert(name.clone(), c.clone());
        }
        for (i, f) in m.field.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_FIELD, i as i32]);
            if let Some(c) = comments.get(&p) {
                self.comments
                    .insert(format!("{name}.{}", f.name()), c.clone());
            }
        }
        for (i, nested) in m.nested_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_NESTED, i as i32]);
            self.add_message(&name, nested, p, comments);
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            let full = format!("{name}.{}", e.name());
            let mut p = path.clone();
            p.extend([MESSAGE_ENUM, i as i32]);
            if let Some(c) = comments.get(&p) {
                self.comments.insert(full.clone(), c.clone());
            }
            self.enums.insert(full, e.clone());
        }
        self.messages.insert(name, m.clone());
    }

    pub fn message(&self, full_name: &str) -> Option<&DescriptorProto> {
        self.messages.get(full_name.trim_start_matches('.'))
    }

    /// The method `method` of the service `service` (full name).
    pub fn method(&self, service: &str, method: &str) -> Option<&MethodDescriptorProto> {
        self.services
            .iter()
            .find(|(n, _)| n == service)
            .and_then(|(_, s)| s.method.iter().find(|m| m.name() == method))
    }

    /// The field of `message` called `name` in the protos or in JSON (`page_size`/`pageSize`).
    pub fn field<'a>(
        &'a self,
        message: &'a DescriptorProto,
        name: &str,
    ) -> Option<&'a FieldDescriptorProto> {
        message
            .field
            .iter()
            .find(|f| f.name() == name || f.json_name() == name)
    }

    /// Whether `field` is a map (a repeated nested entry message).
    pub fn is_map(&self, field: &FieldDescriptorProto) -> bool {
        field.label() == Label::Repeated
            && field.r#type() == Type::Message
            && self
                .message(field.type_name())
                .and_then(|m| m.options.as_ref())
                .is_some_and(|o| o.map_entry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_holds_every_service_with_its_comments() {
        let ix = index();
        let names: Vec<&str> = ix.services.iter().map(|(n, _)| n.as_str()).collect();
        for s in [
            "cezone.registry.v1.RegistryService",
            "cezone.evidence.v1.EvidenceService",
            "cezone.surveys.v1.SurveyService",
            "cezone.scoring.v1.ScoringService",
            "cezone.scheduler.v1.SchedulerService",
        ] {
            assert!(names.contains(&s), "{s} in {names:?}");
        }
        let page = ix.message("cezone.common.v1.PageRequest").unwrap();
        assert_eq!(ix.field(page, "pageSize").unwrap().name(), "page_size");
        assert!(
            ix.comments["cezone.common.v1.PageRequest.page_size"].contains("1000"),
            "field comments are kept"
        );
        assert!(
            ix.method("cezone.scoring.v1.ScoringService", "GetScores")
                .is_some()
        );
    }
}
