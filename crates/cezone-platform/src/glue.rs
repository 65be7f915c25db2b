//! The domain's types on the wire: proto ↔ domain conversion (`convert`) and the framework and
//! org tree other services read from the registry (`registry_view`).

pub mod convert;
pub mod registry_view;
