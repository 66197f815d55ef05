//! Tests of the compiler and both evaluators together: hand-written scenarios per
//! NetworkPolicy, TrustBoundary and EgressPolicy feature and per tier interaction,
//! properties of the compiled tables, random clusters on which the table evaluator
//! must agree with the direct one, and the upstream conformance truth tables; and the
//! Service table with flows through Service addresses.

mod compiled;
mod conformance;
mod egress_policy_scenarios;
mod fixture;
mod incremental;
mod properties;
mod scenarios;
mod service_fixture;
mod service_flows;
mod service_tables;
mod tier_scenarios;
mod trust_boundary_scenarios;
