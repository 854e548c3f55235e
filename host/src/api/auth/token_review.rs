//! Bearer tokens, authenticated by posting a `TokenReview` (authentication.k8s.io/v1) to the
//! Kubernetes API; answers are cached by the token's SHA-256 (the token itself is never kept).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

use super::ReviewError;
use super::UserInfo;
use super::cache::{KeyHasher, TtlCache};
use crate::clock::Clock;
use crate::telemetry::{AuthCacheLabels, Telemetry};

/// How long one review may take before the request fails closed.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Reviews tokens with the API server.
pub struct TokenReviewer {
    client: Client,
    cache: TtlCache<Option<Arc<UserInfo>>>,
    ttl_ms: i64,
    clock: Clock,
    telemetry: Telemetry,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer").finish_non_exhaustive()
    }
}

impl TokenReviewer {
    /// A reviewer caching answers for `ttl_secs` (0: no cache), at most `capacity` of them.
    pub fn new(
        client: Client,
        ttl_secs: u32,
        capacity: usize,
        clock: Clock,
        telemetry: Telemetry,
    ) -> TokenReviewer {
        TokenReviewer {
            client,
            cache: TtlCache::new(capacity),
            ttl_ms: i64::from(ttl_secs) * 1000,
            clock,
            telemetry,
        }
    }

    /// The user `token` belongs to; `None` when the API server says it is not valid.
    pub async fn review(&self, token: &str) -> Result<Option<Arc<UserInfo>>, ReviewError> {
        let mut key = KeyHasher::default();
        key.field(token);
        let key = key.finish();
        let now = self.clock.now_ms();
        if let Some(hit) = self.cache.get(&key, now) {
            self.count("hit");
            return Ok(hit);
        }
        self.count("miss");
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api = Api::<TokenReview>::all(self.client.clone());
        let answer =
            tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
                .await
                .map_err(|_| {
                    ReviewError::new(
                        "TokenReview",
                        format!("no answer within {} s", REVIEW_TIMEOUT.as_secs()),
                    )
                })?
                .map_err(|e| ReviewError::new("TokenReview", e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) if u.username.as_deref().is_some_and(|n| !n.is_empty()) => {
                Some(Arc::new(UserInfo {
                    name: u.username.unwrap_or_default(),
                    uid: u.uid.unwrap_or_default(),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default(),
                }))
            }
            _ => None,
        };
        if self.ttl_ms > 0 {
            self.cache.insert(key, user.clone(), now + self.ttl_ms, now);
        }
        Ok(user)
    }

    fn count(&self, result: &'static str) {
        self.telemetry
            .auth_cache_lookups
            .get_or_create(&AuthCacheLabels {
                cache: "token",
                result,
            })
            .inc();
    }
}
