//! Leader election on a `coordination.k8s.io/v1` Lease, written directly: the holder
//! renews `renewTime` every retry period; a candidate takes the lease over when it is
//! free (no holder: released) or when its record has not changed for
//! `leaseDurationSeconds` as measured on the candidate's own clock (so clocks need not
//! agree). Every write carries the resourceVersion read (optimistic concurrency): two
//! candidates racing for it get one success and one 409.
//!
//! The holder steps down by itself once it could not renew for two thirds of the
//! duration, before any candidate may take over; on shutdown it releases the lease
//! (holder cleared) so a standby takes over at once.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's holderIdentity (pod name).
    pub identity: String,
    pub duration: Duration,
    /// How often to renew or retry.
    pub retry: Duration,
}

/// The elector's state between attempts.
struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The record last seen and when (on this clock) it last changed.
    observed: Option<(String, Instant)>,
    /// When this replica last renewed successfully.
    renewed: Option<Instant>,
}

/// Runs the election until `shutdown` turns true, publishing leadership on `leader`.
pub async fn run(
    client: kube::Client,
    settings: LeaseSettings,
    leader: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api = Api::namespaced(client, &settings.namespace);
    let mut elector = Elector {
        api,
        settings,
        observed: None,
        renewed: None,
    };
    loop {
        let now = Instant::now();
        let is_leader = match elector.try_acquire_or_renew().await {
            Ok(true) => {
                elector.renewed = Some(now);
                true
            }
            // Someone else holds it: stop at once.
            Ok(false) => false,
            // The API server could not be asked: keep leading only while the last
            // renewal is surely still valid for everyone else.
            Err(e) => {
                tracing::warn!(error = %e, "lease: could not read or write the lease");
                *leader.borrow()
                    && elector.renewed.is_some_and(|at| {
                        now.duration_since(at) < elector.settings.duration * 2 / 3
                    })
            }
        };
        if is_leader != *leader.borrow() {
            tracing::info!(
                identity = %elector.settings.identity,
                leader = is_leader,
                "lease: leadership changed"
            );
            leader.send_replace(is_leader);
        }
        if !is_leader {
            elector.renewed = None;
        }
        tokio::select! {
            _ = tokio::time::sleep(elector.settings.retry) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    let was_leader = leader.send_replace(false);
    if was_leader {
        match elector.release().await {
            Ok(()) => tracing::info!("lease: released"),
            Err(e) => tracing::warn!(error = %e, "lease: could not release"),
        }
    }
}

impl Elector {
    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    fn duration_seconds(&self) -> i32 {
        self.settings.duration.as_secs().max(1) as i32
    }

    /// One attempt: `Ok(true)` when this replica holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> kube::Result<bool> {
        let me = self.settings.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(Self::now()),
                    renew_time: Some(Self::now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let now = Instant::now();
        let changed_at = match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => now,
        };
        self.observed = Some((version, changed_at));
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == me {
            spec.renew_time = Some(Self::now());
            spec.lease_duration_seconds = Some(self.duration_seconds());
        } else {
            let duration = spec
                .lease_duration_seconds
                .map_or(self.settings.duration, |s| {
                    Duration::from_secs(s.max(1) as u64)
                });
            let expired = now.duration_since(changed_at) > duration;
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            spec.holder_identity = Some(me);
            spec.lease_duration_seconds = Some(self.duration_seconds());
            spec.acquire_time = Some(Self::now());
            spec.renew_time = Some(Self::now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        let written = self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await;
        conflict_is_false(written)
    }

    /// Clears the holder so that a standby need not wait for the lease to expire.
    async fn release(&self) -> kube::Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(Self::now());
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// A write that lost a race (409 Conflict or AlreadyExists) means someone else holds it.
fn conflict_is_false(result: kube::Result<Lease>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
