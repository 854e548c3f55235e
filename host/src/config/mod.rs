//! `gateway.toml`: the schema (documented field by field in `docs/CONFIG.md`), loading, and
//! validation with `file:line:column` errors.

mod schema;

use std::path::{Path, PathBuf};

pub use schema::*;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates config text; `path` is only used in error messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        invalid(path, text, offset, e.message().to_string())
    })?;
    config
        .validate()
        .map_err(|(span, message)| invalid(path, text, span.start, message))?;
    config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(config)
}

fn invalid(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let (line, column) = line_column(text, offset);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset of `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("gateway.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse(Path::new("g.toml"), "[server]\nself_signed = true\n").unwrap();
        assert_eq!(c.kubelet.interval_secs.get(), 15);
        assert_eq!(c.kubelet.address_types.len(), 3);
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let e = err("[server]\nself_signed = true\n\n[kubelet]\nintervall_secs = 3\n");
        assert!(
            e.starts_with("gateway.toml:5:1: unknown field `intervall_secs`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_value() {
        let e = err("[server]\nself_signed = true\n[kubelet]\nconcurrency = \"many\"\n");
        assert!(
            e.starts_with("gateway.toml:4:15: invalid type: string \"many\""),
            "{e}"
        );
    }

    #[test]
    fn zero_interval_is_rejected_where_it_stands() {
        let e = err("[server]\nself_signed = true\n[kubelet]\ninterval_secs = 0\n");
        assert!(e.starts_with("gateway.toml:4:17:"), "{e}");
        assert!(e.contains("must be at least 1"), "{e}");
    }

    #[test]
    fn collector_niceness_defaults_to_10_and_stays_unprivileged() {
        let c = parse(Path::new("g.toml"), "[server]\nself_signed = true\n").unwrap();
        assert_eq!(c.kubelet.collector_nice.get(), 10);
        let c = parse(
            Path::new("g.toml"),
            "[server]\nself_signed = true\n[kubelet]\ncollector_nice = 0\n",
        )
        .unwrap();
        assert_eq!(c.kubelet.collector_nice.get(), 0);
        for bad in ["20", "-5"] {
            let e = err(&format!(
                "[server]\nself_signed = true\n[kubelet]\ncollector_nice = {bad}\n"
            ));
            assert!(e.starts_with("gateway.toml:4:18:"), "{e}");
            assert!(e.contains("must be from 0 to 19"), "{e}");
        }
    }

    #[test]
    fn timeout_longer_than_interval_is_rejected() {
        let e =
            err("[server]\nself_signed = true\n[kubelet]\ninterval_secs = 5\ntimeout_secs = 10\n");
        assert!(e.starts_with("gateway.toml:5:16:"), "{e}");
        assert!(e.contains("kubelet.timeout_secs"), "{e}");
    }

    #[test]
    fn serving_certificate_required_unless_self_signed() {
        let e = err("[server]\nlisten_addr = \"127.0.0.1:0\"\n");
        assert!(e.contains("server.tls_cert_file"), "{e}");
        let e = err("[server]\ntls_cert_file = \"a.crt\"\n");
        assert!(e.starts_with("gateway.toml:2:17:"), "{e}");
        assert!(e.contains("tls_key_file"), "{e}");
    }

    #[test]
    fn unknown_address_type_is_rejected() {
        let e = err(
            "[server]\nself_signed = true\n[kubelet]\naddress_types = [\"InternalIP\", \"Nope\"]\n",
        );
        assert!(e.starts_with("gateway.toml:4:"), "{e}");
        assert!(e.contains("Nope"), "{e}");
    }

    #[test]
    fn tls_settings_are_checked_where_they_stand() {
        let e = err("[server]\nself_signed = true\ntls_min_version = \"1.1\"\n");
        assert!(e.starts_with("gateway.toml:3:19:"), "{e}");
        assert!(e.contains("1.1"), "{e}");
        let e = err(
            "[server]\nself_signed = true\ntls_cipher_suites = [\"TLS_AES_128_GCM_SHA256\", \"TLS_RSA_WITH_RC4\"]\n",
        );
        assert!(e.starts_with("gateway.toml:3:48:"), "{e}");
        assert!(
            e.contains("unknown or unsupported suite \"TLS_RSA_WITH_RC4\""),
            "{e}"
        );
        let e = err("[server]\nself_signed = true\ntls_min_version = \"1.3\"\n\
             tls_cipher_suites = [\"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"]\n");
        assert!(e.starts_with("gateway.toml:4:"), "{e}");
        assert!(e.contains("no suite is usable"), "{e}");
        let ok = parse(
            Path::new("g.toml"),
            "[server]\nself_signed = true\ntls_min_version = \"1.3\"\ntls_cipher_suites = [\"TLS_AES_256_GCM_SHA384\"]\n",
        )
        .unwrap();
        assert_eq!(ok.server.tls_min_version, TlsVersion::Tls13);
    }

    #[test]
    fn auth_defaults_and_bad_values() {
        let c = parse(Path::new("g.toml"), "[server]\nself_signed = true\n").unwrap();
        assert!(!c.authentication.anonymous && c.authentication.token_review);
        assert!(!c.authentication.insecure_disable);
        assert_eq!(c.authorization.allowed_ttl_secs, 10);
        assert_eq!(c.authorization.cache_size.get(), 10_000);
        let paths: Vec<_> = c
            .authorization
            .always_allow_paths
            .iter()
            .map(|p| p.get_ref().as_str())
            .collect();
        assert_eq!(paths, ["/healthz", "/livez", "/readyz"]);
        let e = err(
            "[server]\nself_signed = true\n[authentication]\nrequestheader_username_headers = [\"X Remote\"]\n",
        );
        assert!(e.starts_with("gateway.toml:4:35:"), "{e}");
        assert!(e.contains("not a valid HTTP header name"), "{e}");
        let e =
            err("[server]\nself_signed = true\n[authorization]\nalways_allow_paths = [\"/a*b\"]\n");
        assert!(e.starts_with("gateway.toml:4:23:"), "{e}");
        let e = err("[server]\nself_signed = true\n[authorization]\ncache_size = 0\n");
        assert!(e.starts_with("gateway.toml:4:14:"), "{e}");
    }

    #[test]
    fn prometheus_backends_defaults_default_and_bad_values() {
        let c = parse(
            Path::new("g.toml"),
            "[server]\nself_signed = true\n[[prometheus]]\nname = \"main\"\n\
             url = \"https://prom.example:9090/prefix\"\nmethod = \"POST\"\n\
             headers = { X-Scope-OrgID = \"team-a\" }\n",
        )
        .unwrap();
        let b = &c.prometheus[0];
        assert_eq!(b.method, QueryMethod::Post);
        assert_eq!(b.timeout_secs.get(), 10);
        assert_eq!(b.max_concurrency.get(), 8);
        assert_eq!(b.discovery_interval_secs.get(), 600);
        assert_eq!(b.max_series.get(), 100_000);
        assert_eq!(b.headers.get_ref()["X-Scope-OrgID"], "team-a");
        // The only backend is the default one.
        assert_eq!(c.prometheus_backend("").unwrap().name.get_ref(), "main");
        assert!(c.prometheus_backend("other").is_none());
        let two = "[server]\nself_signed = true\n[[prometheus]]\nname = \"a\"\n\
                   url = \"http://a:9090\"\n[[prometheus]]\nname = \"default\"\n\
                   url = \"http://b:9090\"\n";
        let c = parse(Path::new("g.toml"), two).unwrap();
        assert_eq!(c.prometheus_backend("").unwrap().name.get_ref(), "default");
        let base = "[server]\nself_signed = true\n[[prometheus]]\nname = \"a\"\n";
        let e = err(&format!("{base}url = \"ftp://a\"\n"));
        assert!(e.starts_with("gateway.toml:5:7:"), "{e}");
        assert!(e.contains("not an http:// or https:// URL"), "{e}");
        let e = err(&format!("{base}url = \"http://a\"\nmethod = \"PUT\"\n"));
        assert!(e.starts_with("gateway.toml:6:10:"), "{e}");
        let e = err(&format!(
            "{base}url = \"http://a\"\nbasic_auth_username = \"u\"\n"
        ));
        assert!(e.starts_with("gateway.toml:6:23:"), "{e}");
        assert!(e.contains("needs basic_auth_password_file"), "{e}");
        let e = err(&format!(
            "{base}url = \"http://a\"\nclient_key_file = \"k.pem\"\n"
        ));
        assert!(e.contains("client_key_file needs client_cert_file"), "{e}");
        let e = err(&format!(
            "{base}url = \"http://a\"\nheaders = {{ \"a b\" = \"x\" }}\n"
        ));
        assert!(e.starts_with("gateway.toml:6:11:"), "{e}");
        let e = err(&format!("{base}url = \"http://a\"\nmax_series = 0\n"));
        assert!(e.starts_with("gateway.toml:6:14:"), "{e}");
        let e = err(&format!("{base}url = \"http://a\"\nurls = 1\n"));
        assert!(e.contains("unknown field `urls`"), "{e}");
        let e = err(&format!(
            "{base}url = \"http://a\"\n[[prometheus]]\nname = \"a\"\nurl = \"http://b\"\n"
        ));
        assert!(e.starts_with("gateway.toml:7:8:"), "{e}");
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
        load(&path).unwrap();
    }

    #[test]
    fn missing_file_error_names_it() {
        let e = load(Path::new("/nonexistent/gateway.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/gateway.toml: cannot read config file"),
            "{e}"
        );
    }
}
