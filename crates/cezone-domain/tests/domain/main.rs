//! Integration tests of the domain core, one binary: the seed framework, importers and
//! exporters, frameworks coded in other ways, scoring rules, properties of the engine, and the
//! demo district.

mod any_shape;
mod demo_district;
mod import_export;
mod properties;
mod rules_scoring;
mod seed_framework;
mod source_document;
mod support;
mod untrusted_input;
