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
    /// A URL with credentials, a query or a fragment where an instance base is expected.
    #[error("'{0}' must be a bare instance URL such as https://acme.my.salesforce.com")]
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
        let url = Url::parse(&with_scheme).map_err(|_| EgressError::NotAUrl(raw.to_string()))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || url.host_str().is_none()
        {
            return Err(EgressError::NotABase(raw.to_string()));
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
mod tests {
    use super::*;

    fn sf() -> Vec<String> {
        vec!["*.my.salesforce.com".into()]
    }

    #[test]
    fn a_bare_host_becomes_https_and_must_match_the_apps_patterns() {
        let p = EgressPolicy::default();
        assert_eq!(
            p.app_instance_url("acme.my.salesforce.com", &sf())
                .expect("valid")
                .as_str(),
            "https://acme.my.salesforce.com/"
        );
        assert!(matches!(
            p.app_instance_url("https://evil.example.com", &sf()),
            Err(EgressError::HostNotAllowed { .. })
        ));
        assert!(matches!(
            p.app_instance_url("https://my.salesforce.com.evil.io", &sf()),
            Err(EgressError::HostNotAllowed { .. })
        ));
        assert!(matches!(
            p.app_instance_url("https://my.salesforce.com", &sf()),
            Err(EgressError::HostNotAllowed { .. })
        ));
    }

    #[test]
    fn plain_http_and_private_literals_are_refused_unless_the_operator_allows_the_host() {
        let p = EgressPolicy::default();
        assert!(matches!(
            p.instance_url("http://acme.my.salesforce.com"),
            Err(EgressError::NotHttps(_))
        ));
        for bad in [
            "https://127.0.0.1",
            "https://10.1.2.3",
            "https://169.254.169.254",
            "https://[::1]",
            "https://[fd00:ec2::254]",
            "https://100.64.0.1",
        ] {
            assert!(
                matches!(p.instance_url(bad), Err(EgressError::PrivateAddress(_))),
                "{bad}"
            );
        }
        let p = EgressPolicy::new(vec!["127.0.0.1".into()]);
        assert!(p.app_instance_url("http://127.0.0.1:8080", &sf()).is_ok());
        assert!(p.instance_url("http://10.0.0.1").is_err());
    }

    #[test]
    fn forbidden_addresses_cover_mapped_v6_and_metadata() {
        assert!(is_forbidden(IpAddr::V4(METADATA_V4)));
        assert!(is_forbidden(IpAddr::V6(METADATA_V6)));
        assert!(is_forbidden("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(!is_forbidden("13.110.0.1".parse().expect("ip")));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_setup() {
        let p = EgressPolicy::default();
        let url = Url::parse("https://localhost").expect("url");
        assert_eq!(
            p.check_resolution(&url).await,
            Err(EgressError::PrivateAddress("localhost".into()))
        );
    }

    #[test]
    fn fixed_endpoints_follow_the_operators_overrides() {
        let p = EgressPolicy::new(vec!["127.0.0.1".into()])
            .with_overrides(&["https://auth.atlassian.com=http://127.0.0.1:9".into()]);
        assert_eq!(
            p.endpoint("https://auth.atlassian.com/oauth/token")
                .expect("ok")
                .as_str(),
            "http://127.0.0.1:9/oauth/token"
        );
        assert_eq!(
            p.endpoint("https://api.atlassian.com/ex/jira/x")
                .expect("ok")
                .as_str(),
            "https://api.atlassian.com/ex/jira/x"
        );
    }

    #[test]
    fn allowed_hosts_match_by_name_and_by_name_with_port() {
        let p = EgressPolicy::new(vec![
            "Sandbox.Local".into(),
            "127.0.0.1:8080".into(),
            "::1:9000".into(),
        ]);
        let allowed = |u: &str| p.allows(&Url::parse(u).expect("url"));
        assert!(allowed("http://sandbox.local:1234/x"));
        assert!(allowed("http://127.0.0.1:8080/x"));
        assert!(allowed("http://[::1]:9000/x"));
        for refused in [
            "http://127.0.0.1:80/x",
            "http://127.0.0.1:808/x",
            "http://127.0.0.1/x",
            "http://127.0.0.2:8080/x",
            "http://sandbox.local.evil.io/x",
            "http://[::1]:900/x",
        ] {
            assert!(!allowed(refused), "{refused}");
        }
        let padded = EgressPolicy::new(vec!["127.0.0.1:08080".into(), "10.0.0.1:+80".into()]);
        assert!(!padded.allows(&Url::parse("http://127.0.0.1:8080").expect("url")));
        assert!(!padded.allows(&Url::parse("https://10.0.0.1:80").expect("url")));
    }

    #[test]
    fn a_remembered_instance_answers_only_for_the_patterns_it_was_checked_against() {
        let p = EgressPolicy::default();
        let jira = vec!["*.atlassian.net".to_string()];
        for _ in 0..2 {
            assert_eq!(
                p.app_instance_url(" acme.my.salesforce.com", &sf())
                    .expect("valid")
                    .as_str(),
                "https://acme.my.salesforce.com/"
            );
            assert!(matches!(
                p.app_instance_url(" acme.my.salesforce.com", &jira),
                Err(EgressError::HostNotAllowed { .. })
            ));
            assert!(matches!(
                p.app_instance_url("http://acme.my.salesforce.com", &sf()),
                Err(EgressError::NotHttps(_))
            ));
        }
        let kept = p.instances.0.lock().expect("lock").len();
        assert_eq!(kept, 1, "only the accepted domain is kept");
        for i in 0..INSTANCE_URLS_KEPT + 10 {
            let domain = format!("t{i}.my.salesforce.com");
            assert!(p.app_instance_url(&domain, &sf()).is_ok());
        }
        assert!(p.instances.0.lock().expect("lock").len() <= INSTANCE_URLS_KEPT);
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let p = EgressPolicy::default();
        assert!(matches!(
            p.instance_url("https://user:pw@acme.my.salesforce.com"),
            Err(EgressError::NotABase(_))
        ));
    }
}
