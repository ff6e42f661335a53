//! Which vendor URLs may be called. Connection domains are typed by customers, which makes the
//! worker an SSRF target: a URL must be https, on one of its app's host patterns, and resolve
//! only to public addresses — checked at set-up, and again at call time through the HTTP
//! client's resolver (so a DNS answer that changes later is caught too). Redirects are never
//! followed. The operator can allow named hosts explicitly (the local sandbox and tests).

use foldhash::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use url::{Host, Url};

mod resolver;
pub use resolver::{SafeDns, SafeResolver};

/// The operator's egress rules.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allow: Arc<Vec<String>>,
    overrides: Arc<Vec<(String, String)>>,
    instances: Arc<InstanceUrls>,
}

/// Connection domains already parsed and checked by [`EgressPolicy::app_instance_url`], with
/// the host patterns they were checked against. The rules and the catalog do not change while
/// a process runs, so the answer for the same domain and patterns is the same; parsing it again
/// for every execution (the host's IDNA processing above all) was about 4% of a worker's
/// instructions. Refusals are not kept: they are rare, and each one is logged afresh.
#[derive(Debug, Default)]
struct InstanceUrls(Mutex<HashMap<String, (Vec<String>, Url)>>);

/// Distinct domains kept at most; past it the map starts again (a fleet has far fewer).
const INSTANCE_URLS_KEPT: usize = 4096;

impl InstanceUrls {
    fn get(&self, raw: &str, patterns: &[String]) -> Option<Url> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(raw)
            .filter(|(checked_against, _)| checked_against.as_slice() == patterns)
            .map(|(_, url)| url.clone())
    }

    fn keep(&self, raw: &str, patterns: &[String], url: &Url) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= INSTANCE_URLS_KEPT {
            kept.clear();
        }
        kept.insert(raw.to_string(), (patterns.to_vec(), url.clone()));
    }
}

/// A URL the policy refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    /// Not a URL at all.
    #[error("'{0}' is not a valid URL")]
    NotAUrl(String),
    /// Plain http to a host the operator did not allow.
    #[error("'{0}' must use https")]
    NotHttps(String),
    /// A URL with more than a scheme, host and port where an instance's address is expected:
    /// what more it has (never the user name or password themselves).
    #[error("the domain must be the instance's address alone (https://host), without {0}")]
    NotABase(String),
    /// Outside the app's host patterns.
    #[error("host '{host}' is not where this app's instances live (expected {patterns})")]
    HostNotAllowed {
        /// The host.
        host: String,
        /// The app's patterns.
        patterns: String,
    },
    /// Resolves to an address that must never be called.
    #[error("host '{0}' resolves to a loopback, private, link-local or metadata address")]
    PrivateAddress(String),
    /// Does not resolve.
    #[error("host '{0}' does not resolve")]
    Unresolvable(String),
}

/// `raw` without the user name and password its authority may carry, to be shown.
fn without_userinfo(raw: &str) -> std::borrow::Cow<'_, str> {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}{}", &raw[..start], &raw[start + at + 1..]).into(),
        None => raw.into(),
    }
}

/// True for addresses a vendor can never live on.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254 included)
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata included
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || o[0] == 0
}

fn host_matches(host: &str, pattern: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host[..host.len() - suffix.len()].ends_with('.')
        }
        None => host == pattern,
    }
}

impl EgressPolicy {
    /// A policy allowing the listed `host[:port]` entries past every rule.
    pub fn new(allow: Vec<String>) -> Self {
        Self {
            allow: Arc::new(
                allow
                    .into_iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect(),
            ),
            overrides: Arc::default(),
            instances: Arc::default(),
        }
    }

    /// Adds `from=to` endpoint overrides (entries without `=` are ignored).
    pub fn with_overrides(mut self, pairs: &[String]) -> Self {
        self.overrides = Arc::new(
            pairs
                .iter()
                .filter_map(|p| p.split_once('='))
                .map(|(a, b)| {
                    (
                        a.trim().trim_end_matches('/').to_string(),
                        b.trim().trim_end_matches('/').to_string(),
                    )
                })
                .collect(),
        );
        self
    }

    /// A vendor's fixed endpoint (e.g. `https://auth.atlassian.com/oauth/token`), after the
    /// operator's overrides, checked like any other URL.
    pub fn endpoint(&self, fixed: &str) -> Result<Url, EgressError> {
        let rewritten = self
            .overrides
            .iter()
            .find(|(from, _)| fixed.starts_with(from.as_str()))
            .map(|(from, to)| format!("{to}{}", &fixed[from.len()..]))
            .unwrap_or_else(|| fixed.to_string());
        let url = Url::parse(&rewritten).map_err(|_| EgressError::NotAUrl(rewritten.clone()))?;
        self.check(&url)?;
        Ok(url)
    }

    /// Whether the operator allowed this URL's host explicitly.
    pub fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        self.allows_host(host, url.port())
    }

    /// Whether an entry is `host` or `host:port`, ignoring case — compared in place, since
    /// every vendor call checks its URL here.
    fn allows_host(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let with_port = |entry: &str| {
            let (Some(port), Some(name), Some(rest)) =
                (port, entry.get(..host.len()), entry.get(host.len()..))
            else {
                return false;
            };
            let digits = rest.strip_prefix(':').unwrap_or_default();
            name.eq_ignore_ascii_case(host)
                && !digits.starts_with('0')
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse() == Ok(port)
        };
        self.allow
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || with_port(a))
    }

    /// Parses and checks an instance base URL (a connection's domain) without the app's host
    /// patterns (used for URLs a vendor hands back, e.g. Salesforce's `instance_url`).
    pub fn instance_url(&self, raw: &str) -> Result<Url, EgressError> {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("https://{raw}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|_| EgressError::NotAUrl(without_userinfo(raw).to_string()))?;
        if url.host_str().is_none() {
            return Err(EgressError::NotAUrl(without_userinfo(raw).to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::NotABase(
                "a user name or password (user@)".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(EgressError::NotABase("a query or fragment (?… #…)".into()));
        }
        self.check(&url)?;
        Ok(url)
    }

    /// As [`EgressPolicy::instance_url`], and the host must match one of `patterns`. A domain
    /// accepted once with the same patterns is answered from memory.
    pub fn app_instance_url(&self, raw: &str, patterns: &[String]) -> Result<Url, EgressError> {
        if let Some(url) = self.instances.get(raw, patterns) {
            return Ok(url);
        }
        let url = self.check_app_instance_url(raw, patterns)?;
        self.instances.keep(raw, patterns, &url);
        Ok(url)
    }

    fn check_app_instance_url(&self, raw: &str, patterns: &[String]) -> Result<Url, EgressError> {
        let url = self.instance_url(raw)?;
        if self.allows(&url) {
            return Ok(url);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if !patterns.iter().any(|p| host_matches(&host, p)) {
            return Err(EgressError::HostNotAllowed {
                host,
                patterns: patterns.join(", "),
            });
        }
        // A vendor's own host serves its API at the root: a path is an address copied from a
        // browser (`/lightning/page/home`), and every call under it would be a 404. (A host
        // the operator allowed, a gateway say, may route by a path prefix.)
        if url.path() != "/" {
            return Err(EgressError::NotABase(format!("a path ('{}')", url.path())));
        }
        Ok(url)
    }

    /// Checks a URL about to be called: https (unless allowed), and no forbidden IP literal.
    /// Names are checked when they resolve (see [`SafeResolver`]).
    pub fn check(&self, url: &Url) -> Result<(), EgressError> {
        if self.allows(url) {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(EgressError::NotHttps(url.to_string()));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| is_forbidden(*ip)) {
            return Err(EgressError::PrivateAddress(ip.to_string()));
        }
        Ok(())
    }

    /// Resolves a host now and refuses it when any address is forbidden (set-up time check).
    pub async fn check_resolution(&self, url: &Url) -> Result<(), EgressError> {
        let Some(host) = url.host_str() else {
            return Err(EgressError::NotAUrl(url.to_string()));
        };
        if self.allows(url) || !matches!(url.host(), Some(Host::Domain(_))) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| EgressError::Unresolvable(host.into()))?
            .collect();
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable(host.into()));
        }
        if addrs.iter().any(|a| is_forbidden(a.ip())) {
            return Err(EgressError::PrivateAddress(host.into()));
        }
        Ok(())
    }

    /// The resolver the HTTP client uses: it refuses forbidden addresses at connect time.
    pub fn resolver(&self) -> Arc<SafeResolver> {
        Arc::new(SafeResolver {
            policy: self.clone(),
        })
    }
}

/// Addresses used in tests and documentation.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IPv6 metadata address.
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

#[cfg(test)]
mod tests;
