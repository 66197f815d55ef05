//! Tests of the compiler and both evaluators together: hand-written scenarios per
//! NetworkPolicy feature and per cluster policy tier interaction, properties of the
//! compiled tables, random clusters on which the table evaluator must agree with the
//! direct one, and the upstream conformance truth tables.

mod compiled;
mod conformance;
mod fixture;
mod properties;
mod scenarios;
mod tier_scenarios;
