//! Tests of the compiler and both evaluators together: hand-written scenarios per
//! NetworkPolicy feature, properties of the compiled tables, and random clusters on
//! which the table evaluator must agree with the direct one.

mod compiled;
mod fixture;
mod properties;
mod scenarios;
