//! Reference evaluator.
