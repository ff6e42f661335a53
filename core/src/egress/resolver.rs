//! The HTTP clients' resolver: a vendor host resolves only to addresses the egress policy
//! allows, at every connection (so a DNS answer that changes later is caught too).

use super::{EgressPolicy, is_forbidden};
use std::net::SocketAddr;
use std::sync::Arc;

/// A DNS resolver that drops forbidden addresses for hosts the operator did not allow.
#[derive(Debug)]
pub struct SafeResolver {
    pub(super) policy: EgressPolicy,
}

impl SafeResolver {
    /// The addresses of `host` the policy lets a call reach: all of them for a host the
    /// operator allowed, else only public ones; an error when none is left.
    fn lookup(
        &self,
        host: &str,
    ) -> impl std::future::Future<Output = Result<Vec<SocketAddr>, BoxError>> + Send + 'static {
        let host = host.to_string();
        let allowed = self.policy.allows_host(&host, None)
            || self
                .policy
                .allow
                .iter()
                .any(|a| a.split(':').next() == Some(host.as_str()));
        async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let safe: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allowed || !is_forbidden(a.ip()))
                .collect();
            if safe.is_empty() {
                return Err(
                    format!("egress refused: {host} resolves only to forbidden addresses").into(),
                );
            }
            Ok(safe)
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.lookup(name.as_str());
        Box::pin(async move {
            let iter: reqwest::dns::Addrs = Box::new(lookup.await?.into_iter());
            Ok(iter)
        })
    }
}

/// [`SafeResolver`] as the resolver of hyper's HTTP connector (vendor calls).
#[derive(Clone, Debug)]
pub struct SafeDns(pub Arc<SafeResolver>);

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for SafeDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let lookup = self.0.lookup(name.as_str());
        Box::pin(async move { Ok(lookup.await?.into_iter()) })
    }
}
