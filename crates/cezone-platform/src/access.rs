//! Who may do what, and the record of what they did: bearer tokens, keys and `permit`
//! (`auth`), the hash-chained log each service keeps (`audit`) and reading it
//! (`audit_list`).

pub mod audit;
pub mod audit_list;
pub mod auth;
