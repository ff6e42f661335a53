//! Access tokens per connection, cached until the vendor refuses them. One fetch at a time per
//! connection: concurrent executions wait for the same fetch instead of stampeding the token
//! endpoint, and a 401 seen by many executions at once leads to one refresh.

use aic_core::vendor::{AccessToken, VendorFailure};
use aic_proto::ConnectionId;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Cache key: a connection at one version of its secrets (an edit drops old tokens).
pub type TokenKey = (ConnectionId, i32);

type Slot = Arc<tokio::sync::Mutex<Option<Arc<AccessToken>>>>;

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

    /// The cached token, or the result of `fetch` (run by one caller while others wait).
    pub async fn get<F, Fut>(
        &self,
        key: TokenKey,
        fetch: F,
    ) -> Result<Arc<AccessToken>, VendorFailure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, VendorFailure>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(token) = guard.as_ref().filter(|t| t.is_fresh()) {
            return Ok(token.clone());
        }
        let token = Arc::new(fetch().await?);
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` if it is still the cached token (a newer one, fetched meanwhile by another
    /// execution, is kept).
    pub async fn invalidate(&self, key: TokenKey, stale: &Arc<AccessToken>) {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale)) {
            *guard = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn token(s: &str) -> AccessToken {
        AccessToken {
            credential: aic_core::vendor::Credential::Bearer(SecretString::from(s.to_string())),
            api_base: url::Url::parse("https://x.example").expect("url"),
            expires_at: None,
            rotated_refresh_token: None,
        }
    }

    #[tokio::test]
    async fn an_expired_token_is_fetched_again() {
        let cache = TokenCache::default();
        let key = (ConnectionId::new(), 1);
        let mut stale = token("old");
        stale.expires_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(5));
        cache.get(key, || async { Ok(stale) }).await.expect("token");
        let fresh = cache
            .get(key, || async { Ok(token("new")) })
            .await
            .expect("token");
        assert!(
            matches!(&fresh.credential, aic_core::vendor::Credential::Bearer(t) if secrecy::ExposeSecret::expose_secret(t) == "new")
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
                    .get(key, || async {
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
            .get(key, || async { Ok(token("b")) })
            .await
            .expect("token");
        cache.invalidate(key, &got[0]).await;
        let again = cache
            .get(key, || async { Ok(token("c")) })
            .await
            .expect("token");
        assert!(
            Arc::ptr_eq(&fresh, &again),
            "a stale invalidation must not drop the fresh token"
        );
    }
}
