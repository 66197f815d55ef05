//! Reads a manifests directory.
