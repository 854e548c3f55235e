//! Authentication in kube-apiserver's order: front proxy (certificate from the requestheader
//! CA with an allowed CN, identity from headers) → client certificate from the client CA
//! (CN = user, O = groups) → bearer token via `TokenReview` → anonymous, if enabled.

use std::borrow::Cow;

use http::{HeaderMap, header};

use super::ca_bundle::AuthSources;
use super::client_cert::PeerCert;
use super::token_review::TokenReviewer;
use super::{ReviewError, UserInfo, front_proxy};

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// How a request was authenticated (the `method` label of the authentication metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthnMethod {
    /// Front-proxy certificate and identity headers.
    FrontProxy,
    /// Client certificate from the client CA.
    ClientCert,
    /// Bearer token reviewed by the API server.
    Token,
    /// No credentials, anonymous access enabled.
    Anonymous,
}

impl AuthnMethod {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthnMethod::FrontProxy => "front-proxy",
            AuthnMethod::ClientCert => "client-cert",
            AuthnMethod::Token => "token",
            AuthnMethod::Anonymous => "anonymous",
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// No credential was valid; the reason is for logs (never contains a token).
    #[error("{0}")]
    Unauthorized(String),
    /// A bearer token could not be reviewed: the request fails closed.
    #[error(transparent)]
    Unavailable(#[from] ReviewError),
}

/// The bearer token of a request, if it carries one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        user.groups.push(AUTHENTICATED_GROUP.to_string());
    }
    user
}

/// Identifies the caller of one request.
#[derive(Debug)]
pub struct Authenticator {
    /// Token reviews (`None`: `authentication.token_review = false`).
    pub tokens: Option<TokenReviewer>,
    /// `authentication.anonymous`.
    pub anonymous: bool,
}

impl Authenticator {
    /// The caller of a request on a connection whose certificate proved `peer`.
    pub async fn authenticate<'p>(
        &self,
        peer: &'p PeerCert,
        sources: &AuthSources,
        headers: &HeaderMap,
    ) -> Result<(Cow<'p, UserInfo>, AuthnMethod), AuthnError> {
        let mut reasons: Vec<Cow<'static, str>> = Vec::new();
        if let Some(cn) = &peer.front_proxy_cn {
            let allowed =
                sources.allowed_names.is_empty() || sources.allowed_names.iter().any(|n| n == cn);
            if !allowed {
                reasons.push(
                    format!(
                        "front-proxy certificate CN {cn:?} is not in requestheader-allowed-names"
                    )
                    .into(),
                );
            } else if let Some(user) = front_proxy::user_from_headers(sources, headers) {
                return Ok((
                    Cow::Owned(with_authenticated_group(user)),
                    AuthnMethod::FrontProxy,
                ));
            } else {
                reasons.push("front-proxy request without a username header".into());
            }
        }
        if let Some(user) = &peer.client_user {
            let user = if user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
                Cow::Borrowed(user)
            } else {
                Cow::Owned(with_authenticated_group(user.clone()))
            };
            return Ok((user, AuthnMethod::ClientCert));
        }
        if let Some(rejected) = &peer.rejected {
            reasons.push(format!("client certificate not accepted: {rejected}").into());
        }
        match (bearer_token(headers), &self.tokens) {
            (Some(token), Some(reviewer)) => match reviewer.review(token).await? {
                Some(user) => {
                    return Ok((
                        Cow::Owned(with_authenticated_group((*user).clone())),
                        AuthnMethod::Token,
                    ));
                }
                None => reasons.push("invalid bearer token".into()),
            },
            (Some(_), None) => {
                reasons.push("bearer token given but token review is disabled".into())
            }
            (None, _) => {}
        }
        if self.anonymous && reasons.is_empty() {
            return Ok((
                Cow::Owned(UserInfo {
                    name: "system:anonymous".into(),
                    groups: vec!["system:unauthenticated".into()],
                    ..UserInfo::default()
                }),
                AuthnMethod::Anonymous,
            ));
        }
        if reasons.is_empty() {
            reasons.push("no credentials".into());
        }
        Err(AuthnError::Unauthorized(reasons.join("; ")))
    }
}
