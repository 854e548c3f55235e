//! `metrics-gateway plugin new NAME`: a ready-to-build plugin crate from the SDK's template.

use std::path::{Path, PathBuf};

/// Template files: path in the new crate, contents with `{{name}}`, `{{crate_name}}` and
/// `{{sdk_path}}` placeholders.
const TEMPLATE: [(&str, &str); 2] = [
    (
        "Cargo.toml",
        include_str!("../../../plugin-sdk/template/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugin-sdk/template/src/lib.rs.tmpl"),
    ),
];

/// The SDK next to the sources this binary was built from.
pub fn bundled_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    sdk.join("Cargo.toml")
        .exists()
        .then(|| sdk.canonicalize().unwrap_or(sdk))
}

/// A failed `plugin new`.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name can't be a plugin or crate name.
    #[error(
        "plugin name {0:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter"
    )]
    Name(String),
    /// The directory exists.
    #[error("{0}: already exists; choose another name or --dir")]
    Exists(PathBuf),
    /// No SDK to depend on.
    #[error("no metrics-gateway-sdk found next to this binary's sources; pass --sdk PATH")]
    NoSdk,
    /// Writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Creates crate `name` in `dir` depending on the SDK at `sdk`; returns the files written.
pub fn create(name: &str, dir: &Path, sdk: Option<&Path>) -> Result<Vec<PathBuf>, NewError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(NewError::Name(name.to_owned()));
    }
    if dir.exists() {
        return Err(NewError::Exists(dir.to_owned()));
    }
    let sdk = match sdk {
        Some(s) => s.canonicalize().unwrap_or_else(|_| s.to_owned()),
        None => bundled_sdk().ok_or(NewError::NoSdk)?,
    };
    let sdk_path = sdk.to_string_lossy().replace('\\', "/");
    let mut written = Vec::new();
    for (file, template) in TEMPLATE {
        let path = dir.join(file);
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{sdk_path}}", &sdk_path);
        let io = |source| NewError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("queue-latency");
        let files = create("queue-latency", &dir, Some(tmp.path())).unwrap();
        assert_eq!(files.len(), TEMPLATE.len());
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                !text.contains("{{"),
                "{}: unrendered placeholder",
                f.display()
            );
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let doc: toml::Table = toml::from_str(&manifest).unwrap();
        assert_eq!(doc["package"]["name"].as_str(), Some("queue-latency"));
        assert!(
            doc.contains_key("workspace"),
            "the crate is its own workspace"
        );
        assert!(manifest.contains(&*tmp.path().to_string_lossy()));
    }

    #[test]
    fn refuses_bad_names_and_existing_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "Upper", "1st", "a_b", "a.b"] {
            assert!(matches!(
                create(bad, &tmp.path().join("x"), Some(tmp.path())),
                Err(NewError::Name(_))
            ));
        }
        assert!(matches!(
            create("ok", tmp.path(), Some(tmp.path())),
            Err(NewError::Exists(_))
        ));
    }
}
