//! The compiler: cluster model -> identities, ip cache and per-node policy tables.

pub mod tables;
