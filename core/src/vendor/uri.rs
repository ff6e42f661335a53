//! A call's URL: a definition's path joined onto the connection's API base, checked against the
//! egress policy, and the `http::Uri` the transport sends it to.

use super::VendorFailure;
use crate::egress::{EgressError, EgressPolicy};
use url::Url;

/// The request target of a call: what [`join`] makes of `base` and `path`, as an `http::Uri`.
///
/// Where the path and query are plain — bytes `url` keeps as given, no dot segment it would
/// remove — the text is put together from the parsed base and parsed once, as the `Uri`:
/// setting the path on a `Url` and parsing its text again into the `Uri` was ~4 k
/// instructions per call (`Url::set_path` 3.2 k of it), ~2% of a worker's per execution.
/// Everything else goes through [`join`], as before. The policy checks the base: its scheme,
/// host and port are the call's.
pub fn call_uri(policy: &EgressPolicy, base: &Url, path: &str) -> Result<http::Uri, VendorFailure> {
    if let Some(uri) = plain_join(base, path).and_then(|text| http::Uri::try_from(text).ok()) {
        policy.check(base).map_err(VendorFailure::egress)?;
        return Ok(uri);
    }
    let url = join(policy, base, path)?;
    url.as_str()
        .parse()
        .map_err(|_| VendorFailure::egress(EgressError::NotAUrl(url.to_string())))
}

/// The join as text, where `Url::set_path` and `set_query` would keep the path and the query
/// byte for byte: a base without query or fragment, a path starting with `/`, path and query
/// bytes among those no `url` percent-encode set holds (ASCII letters and digits, `-._~`,
/// `!$&()*+,;=:@%`, `'` and `/` in the path, `/?` in the query), and no `.` or `..` segment,
/// written plainly or percent-encoded (`url` removes them). `None` otherwise.
fn plain_join(base: &Url, path: &str) -> Option<String> {
    if base.query().is_some() || base.fragment().is_some() || base.cannot_be_a_base() {
        return None;
    }
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let plain = path.starts_with('/')
        && plain_path(path.as_bytes())
        && query.is_none_or(|q| q.bytes().all(|b| KEPT[usize::from(b)] & IN_QUERY != 0));
    if !plain {
        return None;
    }
    let head = &base[..url::Position::BeforePath];
    let base_path = base.path().trim_end_matches('/');
    let mut text = String::with_capacity(
        head.len() + base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
    );
    text.push_str(head);
    text.push_str(base_path);
    text.push_str(path);
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    Some(text)
}

/// Whether `url` keeps every byte of `path` as given and resolves none of its segments away,
/// in one pass: splitting the path on `/` as a `str` and testing each segment cost ~1 k
/// instructions per call (a search for the next `/` set up for every segment), ~0.9% of a
/// worker's per execution.
fn plain_path(path: &[u8]) -> bool {
    let mut segment = 0;
    for (at, &b) in path.iter().enumerate() {
        if KEPT[usize::from(b)] & IN_PATH == 0 {
            return false;
        }
        if b == b'/' {
            if dot_segment(&path[segment..at]) {
                return false;
            }
            segment = at + 1;
        }
    }
    !dot_segment(&path[segment..])
}

/// A segment `url` would resolve away: `.` or `..`, a dot also written `%2e` or `%2E`.
fn dot_segment(s: &[u8]) -> bool {
    let dot = |at: usize| match s.get(at) {
        Some(b'.') => Some(at + 1),
        Some(b'%')
            if s.get(at + 1) == Some(&b'2') && matches!(s.get(at + 2), Some(b'e' | b'E')) =>
        {
            Some(at + 3)
        }
        _ => None,
    };
    match dot(0) {
        Some(end) if end == s.len() => true,
        Some(end) => dot(end) == Some(s.len()),
        None => false,
    }
}

/// [`KEPT`]'s flags: a byte `url` keeps as it is in a path, in a query.
const IN_PATH: u8 = 1;
const IN_QUERY: u8 = 2;

/// By byte, where `url` keeps it as given (see [`plain_join`]).
const KEPT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = IN_PATH | IN_QUERY;
        }
        b += 1;
    }
    let both = b"-._~!$&()*+,;=:@%/";
    let mut i = 0;
    while i < both.len() {
        table[both[i] as usize] = IN_PATH | IN_QUERY;
        i += 1;
    }
    table[b'\'' as usize] = IN_PATH;
    table[b'?' as usize] = IN_QUERY;
    table
};

/// Joins a definition path onto an API base, then checks the result against the egress policy:
/// the base without its trailing `/`, then the path, parsed whole. Calls take [`call_uri`]'s
/// plain join first; this one is for token endpoints and whatever is not plain.
pub fn join(policy: &EgressPolicy, base: &Url, path: &str) -> Result<Url, VendorFailure> {
    let mut joined = base.as_str().trim_end_matches('/').to_string();
    joined.push_str(path);
    let url = Url::parse(&joined)
        .map_err(|_| VendorFailure::egress(EgressError::NotAUrl(path.into())))?;
    policy.check(&url).map_err(VendorFailure::egress)?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_the_base_path_of_the_instance() {
        let p = EgressPolicy::default();
        let base = Url::parse("https://api.atlassian.com/ex/jira/abc").expect("url");
        assert_eq!(
            join(&p, &base, "/rest/api/3/issue").expect("ok").as_str(),
            "https://api.atlassian.com/ex/jira/abc/rest/api/3/issue"
        );
    }

    #[test]
    fn a_call_goes_to_the_uri_of_the_joined_url() {
        let p = EgressPolicy::default();
        let bases = [
            "https://acme.my.salesforce.com",
            "https://acme.my.salesforce.com/",
            "https://api.atlassian.com/ex/jira/abc",
            "https://api.atlassian.com/ex/jira/abc/",
            "https://dev1.service-now.com:8443/base/",
            "https://xn--bcher-kva.example/",
            "https://B\u{fc}cher.example/",
            "https://a.example/x?q=1",
            "https://[2001:db8::1]:8443/v",
        ];
        let paths = [
            "/services/data/v60.0/sobjects/Lead/",
            "/services/data/v60.0/sobjects/Lead/Ext_Id__c/0b6f3c1e-9a8d-4c2b-8e7f-1a2b3c4d5e6f",
            "/rest/api/3/issue",
            "/api/now/table/incident?sysparm_display_value=true&x=a%20b",
            "/a/../b/./c",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a/..b/.c/...",
            "/caf\u{e9}?q=\u{e9}",
            "/a b",
            "/a#frag",
            "/a?b?c",
            "/a?",
            "/a\\b",
            "/{x}|[y]^`<>\"",
            "/it's?q='x'",
            "//double/slash",
            "/",
            "relative",
            "",
            "?only=query",
            "/a\tb",
        ];
        for base in bases {
            let base = Url::parse(base).expect("base");
            for path in paths {
                let through_url = join(&p, &base, path)
                    .ok()
                    .and_then(|u| u.as_str().parse::<http::Uri>().ok());
                let call = call_uri(&p, &base, path).ok();
                assert_eq!(call, through_url, "{base} + {path:?}");
            }
        }
        // The plain joins a worker makes are put together, not joined through a `Url`.
        let base = Url::parse("https://acme.my.salesforce.com/").expect("base");
        for path in &paths[..4] {
            assert!(plain_join(&base, path).is_some(), "{path}");
        }
        // And the policy still holds: a base it refuses is refused on either way.
        let plain = Url::parse("http://acme.example").expect("base");
        assert!(call_uri(&p, &plain, "/x").is_err());
        assert!(call_uri(&p, &plain, "/a b").is_err());
    }
}
