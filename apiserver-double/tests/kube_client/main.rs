//! The double exercised through kube's real client over HTTP: every test
//! starts its own double on a loopback port and talks to it with kube::Api,
//! kube's watcher and reflector.

mod apply;
mod common;
mod controls;
mod crud;
mod list;
mod status;
mod watch;
