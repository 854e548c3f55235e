//! What a connection's client certificate proves, decided once per connection right after the
//! handshake: which of the two CAs signed it (requestheader and/or client), and its subject.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::UserInfo;
use super::ca_bundle::AuthSources;

/// The verified facts about a connection's client certificate.
#[derive(Clone, Debug, Default)]
pub struct PeerCert {
    /// The certificate's CN when the requestheader (front-proxy) CA verified it.
    pub front_proxy_cn: Option<String>,
    /// The user (CN) and groups (O) when the client CA verified it.
    pub client_user: Option<UserInfo>,
    /// Why a presented certificate verified against neither CA (expired, unknown issuer, …).
    pub rejected: Option<String>,
}

impl PeerCert {
    /// Verifies `chain` (leaf first; empty when the client sent none) against both CAs.
    pub fn classify(chain: &[CertificateDer<'_>], sources: &AuthSources) -> PeerCert {
        let Some(leaf) = chain.first() else {
            return PeerCert::default();
        };
        let mut out = PeerCert::default();
        let mut errors = Vec::new();
        let subject = subject(leaf);
        match &sources.requestheader_ca {
            Some(ca) => match ca.verify(chain) {
                Ok(()) => out.front_proxy_cn = subject.as_ref().map(|(cn, _)| cn.clone()),
                Err(e) => errors.push(format!("requestheader CA: {e}")),
            },
            None => errors.push("no requestheader CA configured".into()),
        }
        match &sources.client_ca {
            Some(ca) => match ca.verify(chain) {
                Ok(()) => {
                    out.client_user = subject.map(|(cn, orgs)| UserInfo {
                        name: cn,
                        groups: orgs,
                        ..UserInfo::default()
                    })
                }
                Err(e) => errors.push(format!("client CA: {e}")),
            },
            None => errors.push("no client CA configured".into()),
        }
        if out.front_proxy_cn.is_none() && out.client_user.is_none() {
            out.rejected = Some(errors.join("; "));
        }
        out
    }
}

/// CN and O values of a certificate's subject.
fn subject(der: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let name = cert.subject();
    let cn = name.iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = name
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}
