//! Access tokens per connection, cached until the vendor refuses them. One fetch at a time per
//! connection: concurrent executions wait for the same fetch instead of stampeding the token
//! endpoint, and a 401 seen by many executions at once leads to one refresh. An expired or
//! refused token stays in its slot until the next one arrives, so that the fetch can renew it
//! with what the vendor handed out alongside it (a refresh token) instead of starting over.

use aic_core::vendor::{AccessToken, VendorFailure};
use aic_proto::ConnectionId;
use foldhash::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Cache key: a connection at one version of its secrets (an edit drops old tokens).
pub type TokenKey = (ConnectionId, i32);

type Slot = Arc<tokio::sync::Mutex<Cached>>;

/// One connection's latest token, and whether the vendor has refused it since.
#[derive(Debug, Default)]
struct Cached {
    token: Option<Arc<AccessToken>>,
    refused: bool,
}

/// The cache.
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Slot>>,
}

impl TokenCache {
    fn slot(&self, key: TokenKey) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key).or_default().clone()
    }

    /// The cached token, or the result of `fetch` (run by one caller while others wait), which
    /// is handed the token it replaces — expired or refused — if there was one.
    pub async fn get<F, Fut>(
        &self,
        key: TokenKey,
        fetch: F,
    ) -> Result<Arc<AccessToken>, VendorFailure>
    where
        F: FnOnce(Option<Arc<AccessToken>>) -> Fut,
        Fut: Future<Output = Result<AccessToken, VendorFailure>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(token) = guard.token.as_ref().filter(|t| t.is_fresh())
            && !guard.refused
        {
            return Ok(token.clone());
        }
        // Boxed: the fetch (an HTTP exchange) is rare, and inline it would enlarge every
        // execution's future by its size, cache hit or not.
        let token = Arc::new(Box::pin(fetch(guard.token.clone())).await?);
        *guard = Cached {
            token: Some(token.clone()),
            refused: false,
        };
        Ok(token)
    }

    /// Marks `stale` refused if it is still the cached token (a newer one, fetched meanwhile by
    /// another execution, is kept): the next caller fetches another.
    pub async fn invalidate(&self, key: TokenKey, stale: &Arc<AccessToken>) {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if guard.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale)) {
            guard.refused = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn token(s: &str) -> AccessToken {
        AccessToken::new(
            aic_core::vendor::Credential::Bearer(SecretString::from(s.to_string())),
            url::Url::parse("https://x.example").expect("url"),
        )
    }

    #[tokio::test]
    async fn an_expired_token_is_fetched_again() {
        let cache = TokenCache::default();
        let key = (ConnectionId::new(), 1);
        let mut stale = token("old");
        stale.expires_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(5));
        cache
            .get(key, |_| async { Ok(stale) })
            .await
            .expect("token");
        let fresh = cache
            .get(key, |_| async { Ok(token("new")) })
            .await
            .expect("token");
        assert!(
            matches!(&fresh.credential, aic_core::vendor::Credential::Bearer(t) if secrecy::ExposeSecret::expose_secret(t) == "new")
        );
    }

    fn secret(t: &AccessToken) -> &str {
        match &t.credential {
            aic_core::vendor::Credential::Bearer(s) => secrecy::ExposeSecret::expose_secret(s),
            aic_core::vendor::Credential::Basic { .. } => "basic",
        }
    }

    #[tokio::test]
    async fn the_fetch_is_handed_the_token_it_replaces_expired_or_refused() {
        let cache = TokenCache::default();
        let key = (ConnectionId::new(), 1);
        let seen = Mutex::new(Vec::new());
        let fetch = |name: &'static str| {
            let seen = &seen;
            move |previous: Option<Arc<AccessToken>>| async move {
                seen.lock()
                    .expect("lock")
                    .push(previous.as_deref().map(|t| secret(t).to_string()));
                let mut t = token(name);
                if name == "expiring" {
                    t.expires_at =
                        Some(std::time::Instant::now() + std::time::Duration::from_secs(5));
                }
                Ok(t)
            }
        };
        cache.get(key, fetch("expiring")).await.expect("token");
        let refused = cache.get(key, fetch("second")).await.expect("token");
        cache.invalidate(key, &refused).await;
        let third = cache.get(key, fetch("third")).await.expect("token");
        let again = cache.get(key, fetch("unused")).await.expect("token");
        assert!(Arc::ptr_eq(&third, &again), "a fresh token is reused");
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![None, Some("expiring".into()), Some("second".into())]
        );
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_one_refresh() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let key = (ConnectionId::new(), 1);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(key, |_| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(token("a"))
                    })
                    .await
                    .expect("token")
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.expect("joined"));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Every caller saw the same 401 on the same token: only the first invalidation counts.
        for stale in &got {
            cache.invalidate(key, stale).await;
        }
        let fresh = cache
            .get(key, |_| async { Ok(token("b")) })
            .await
            .expect("token");
        cache.invalidate(key, &got[0]).await;
        let again = cache
            .get(key, |_| async { Ok(token("c")) })
            .await
            .expect("token");
        assert!(
            Arc::ptr_eq(&fresh, &again),
            "a stale invalidation must not drop the fresh token"
        );
    }
}
