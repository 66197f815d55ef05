//! Manifest parsing.
