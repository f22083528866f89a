//! System E's transparency log.

pub mod entry;
