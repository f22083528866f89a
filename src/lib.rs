//! cpid: the identifier registry and resolution server of a national
//! computing-power interconnection system.
#![forbid(unsafe_code)]
pub mod dns;
