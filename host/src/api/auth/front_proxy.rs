//! The front proxy's identity headers (`X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-*`
//! by default): read only from a connection the requestheader CA verified, and stripped from
//! every request so nothing downstream can mistake them for an identity.

use std::collections::BTreeMap;

use http::HeaderMap;

use super::UserInfo;
use super::ca_bundle::AuthSources;

/// The user the front proxy names in `headers`; `None` when no username header is set.
pub fn user_from_headers(sources: &AuthSources, headers: &HeaderMap) -> Option<UserInfo> {
    let name = sources
        .username_headers
        .iter()
        .filter_map(|h| headers.get(h)?.to_str().ok())
        .find(|v| !v.is_empty())?;
    let mut user = UserInfo {
        name: name.to_string(),
        ..UserInfo::default()
    };
    for h in &sources.group_headers {
        for v in headers.get_all(h) {
            if let Ok(v) = v.to_str() {
                user.groups.push(v.to_string());
            }
        }
    }
    if !sources.extra_prefixes.is_empty() {
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            let Some(key) = sources
                .extra_prefixes
                .iter()
                .find_map(|p| name.as_str().strip_prefix(p.as_str()))
            else {
                continue;
            };
            if let Ok(v) = value.to_str() {
                extra.entry(unescape(key)).or_default().push(v.to_string());
            }
        }
        user.extra = extra;
    }
    Some(user)
}

/// Whether `name` (lower case, as `HeaderName`s are) is an identity header.
fn is_identity_header(sources: &AuthSources, name: &str) -> bool {
    name.starts_with("x-remote-")
        || sources.username_headers.iter().any(|h| h == name)
        || sources.group_headers.iter().any(|h| h == name)
        || sources
            .extra_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
}

/// Removes every identity header (and any `X-Remote-*`) from `headers`.
pub fn strip(sources: &AuthSources, headers: &mut HeaderMap) {
    if !headers
        .keys()
        .any(|n| is_identity_header(sources, n.as_str()))
    {
        return;
    }
    let names: Vec<_> = headers
        .keys()
        .filter(|n| is_identity_header(sources, n.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Undoes client-go's escaping of `extra` keys in header names (`%2F` → `/`), lower-cased as
/// kube-apiserver does.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i].to_ascii_lowercase());
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::ca_bundle::{Overrides, resolve};

    fn sources() -> AuthSources {
        resolve(&Overrides::default(), &Default::default()).unwrap()
    }

    #[test]
    fn reads_user_groups_and_extra() {
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", "alice".parse().unwrap());
        h.append("x-remote-group", "devs".parse().unwrap());
        h.append("x-remote-group", "system:authenticated".parse().unwrap());
        h.append(
            "x-remote-extra-authentication.kubernetes.io%2Fcredential-id",
            "JTI=1".parse().unwrap(),
        );
        h.append("x-remote-extra-scopes", "a".parse().unwrap());
        h.append("x-remote-extra-scopes", "b".parse().unwrap());
        let u = user_from_headers(&sources(), &h).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, ["devs", "system:authenticated"]);
        assert_eq!(
            u.extra["authentication.kubernetes.io/credential-id"],
            ["JTI=1"]
        );
        assert_eq!(u.extra["scopes"], ["a", "b"]);
    }

    #[test]
    fn no_user_header_is_no_user() {
        let mut h = HeaderMap::new();
        h.insert("x-remote-group", "system:masters".parse().unwrap());
        assert!(user_from_headers(&sources(), &h).is_none());
    }

    #[test]
    fn strip_removes_identity_headers_only() {
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", "system:admin".parse().unwrap());
        h.insert("x-remote-group", "system:masters".parse().unwrap());
        h.insert("x-remote-extra-a", "b".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        strip(&sources(), &mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn unescape_decodes_percent_escapes() {
        assert_eq!(unescape("a%2Fb"), "a/b");
        assert_eq!(unescape("Scopes"), "scopes");
        assert_eq!(unescape("bad%zz"), "bad%zz");
        assert_eq!(unescape("end%2"), "end%2");
    }
}
