//! Emulated pods.
