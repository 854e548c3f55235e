//! The deploy manifests in `config/deploy/`: the kustomize base rendered by `kubectl kustomize`,
//! and the Helm chart generated from it (`scripts/gen-helm-chart.sh`), so the two cannot drift.
//!
//! The chart is the base's objects, one template per object, with a few values substituted:
//! the release namespace for `metrics-gateway`, and the values in [`CHART_VALUES`]. The
//! Namespace object itself is left out (Helm installs into `--namespace`, made with
//! `--create-namespace`). Its templates use nothing but `{{ .Release.Namespace }}` and
//! `{{ .Values.… }}`, so [`render_chart`] can render them exactly as Helm would for given values.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The namespace of the base's objects, the release namespace in the chart.
pub const BASE_NAMESPACE: &str = "metrics-gateway";

/// The chart's directory, relative to the repository root.
pub const CHART_DIR: &str = "config/deploy/helm/metrics-gateway";

/// The base's directory, relative to the repository root.
pub const BASE_DIR: &str = "config/deploy/base";

/// What the generated files say about themselves.
const GENERATED: &str =
    "# Generated from config/deploy/base by scripts/gen-helm-chart.sh: do not edit.";

/// The chart's values: (path under `.Values`, what it replaces in the base). The defaults in
/// `values.yaml` are the base's own values, so the default chart renders the base.
pub const CHART_VALUES: [&str; 3] = ["image.repository", "image.tag", "replicas"];

/// A deploy-manifest operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// `kubectl` could not be run.
    #[error("running kubectl {args}: {source}")]
    Kubectl {
        /// Its arguments.
        args: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `kubectl` ran and failed.
    #[error("kubectl {args} failed: {stderr}")]
    KubectlFailed {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// The rendered base lacks something the chart needs.
    #[error("config/deploy/base: {0}")]
    Base(String),
    /// A template uses something [`render_chart`] does not know.
    #[error("{file}: unsupported template expression `{expr}`")]
    Template {
        /// The template.
        file: String,
        /// The expression.
        expr: String,
    },
}

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `kubectl kustomize DIR`: the rendered objects as one YAML stream.
pub fn kustomize(dir: &Path) -> Result<String, DeployError> {
    let args = format!("kustomize {}", dir.display());
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|source| DeployError::Kubectl {
            args: args.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(DeployError::KubectlFailed {
            args,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The documents of a YAML stream as kubectl writes it (separated by `---` lines).
pub fn documents(yaml: &str) -> Vec<&str> {
    yaml.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .collect()
}

/// A line's content after its indentation and list marker (`- `).
fn content(line: &str) -> &str {
    let content = line.trim_start();
    content.strip_prefix("- ").unwrap_or(content)
}

/// The value of the first top-level-or-nested `key: value` line of a document.
fn field<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    doc.lines().find_map(|l| {
        content(l)
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::trim)
    })
}

/// A file of the chart: its path inside the chart directory and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    /// Path relative to the chart directory.
    pub path: PathBuf,
    /// Contents.
    pub text: String,
}

/// The chart generated from the rendered base (`kubectl kustomize config/deploy/base`);
/// `version` is the chart's version (the workspace's).
pub fn helm_chart(base: &str, version: &str) -> Result<Vec<ChartFile>, DeployError> {
    let image = documents(base)
        .iter()
        .find_map(|d| field(d, "image"))
        .ok_or_else(|| DeployError::Base("no container image".into()))?;
    let (repository, tag) = image
        .rsplit_once(':')
        .ok_or_else(|| DeployError::Base(format!("image {image} has no tag")))?;
    let replicas = documents(base)
        .iter()
        .find_map(|d| field(d, "replicas"))
        .ok_or_else(|| DeployError::Base("no Deployment replicas".into()))?;
    let mut files = vec![
        ChartFile {
            path: "Chart.yaml".into(),
            text: format!(
                "{GENERATED}\napiVersion: v2\nname: metrics-gateway\ndescription: Kubernetes metrics gateway: metrics.k8s.io, custom and external metrics behind the aggregation layer\ntype: application\nversion: {version}\nappVersion: \"{tag}\"\n"
            ),
        },
        ChartFile {
            path: "values.yaml".into(),
            text: format!(
                "{GENERATED}\n# Configuration (gateway.toml) and everything else: edit config/deploy/base and regenerate.\nimage:\n  repository: {repository}\n  tag: \"{tag}\"\nreplicas: {replicas}\n"
            ),
        },
    ];
    let mut names = std::collections::BTreeSet::new();
    for doc in documents(base) {
        let kind =
            field(doc, "kind").ok_or_else(|| DeployError::Base("object without kind".into()))?;
        if kind == "Namespace" {
            continue;
        }
        let name = doc
            .lines()
            .skip_while(|l| *l != "metadata:")
            .find_map(|l| l.strip_prefix("  name: "))
            .ok_or_else(|| DeployError::Base(format!("{kind} without metadata.name")))?;
        let file = format!(
            "templates/{}-{}.yaml",
            kind.to_ascii_lowercase(),
            name.replace(':', "-")
        );
        if !names.insert(file.clone()) {
            return Err(DeployError::Base(format!("two objects map to {file}")));
        }
        let mut text = format!("{GENERATED}\n");
        for line in doc.lines() {
            text.push_str(&template_line(line, image, replicas));
            text.push('\n');
        }
        files.push(ChartFile {
            path: file.into(),
            text,
        });
    }
    Ok(files)
}

/// One line of the base as a template line.
fn template_line(line: &str, image: &str, replicas: &str) -> String {
    let content = content(line);
    let indent = &line[..line.len() - content.len()];
    let ns_prefix = format!("{BASE_NAMESPACE}/");
    if content == format!("namespace: {BASE_NAMESPACE}") {
        format!("{indent}namespace: {{{{ .Release.Namespace }}}}")
    } else if content == format!("image: {image}") {
        format!("{indent}image: \"{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"")
    } else if content == format!("replicas: {replicas}") && indent == "  " {
        format!("{indent}replicas: {{{{ .Values.replicas }}}}")
    } else if let Some(rest) = content
        .strip_prefix("cert-manager.io/inject-ca-from: ")
        .and_then(|v| v.strip_prefix(&ns_prefix))
    {
        format!("{indent}cert-manager.io/inject-ca-from: {{{{ .Release.Namespace }}}}/{rest}")
    } else {
        line.to_string()
    }
}

/// Renders the chart's templates as Helm does for `namespace` and `values` (path → value, as
/// in [`CHART_VALUES`]): one YAML stream. Any other template expression is an error.
pub fn render_chart(
    files: &[ChartFile],
    namespace: &str,
    values: &[(&str, &str)],
) -> Result<String, DeployError> {
    let mut out = String::new();
    for file in files.iter().filter(|f| f.path.starts_with("templates")) {
        let mut rest = file.text.as_str();
        out.push_str("---\n");
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find("}}")
                .map(|e| start + e + 2)
                .ok_or_else(|| DeployError::Template {
                    file: file.path.display().to_string(),
                    expr: rest[start..].lines().next().unwrap_or("").to_string(),
                })?;
            let expr = rest[start + 2..end - 2].trim();
            let value = if expr == ".Release.Namespace" {
                Some(namespace)
            } else {
                expr.strip_prefix(".Values.")
                    .and_then(|path| values.iter().find(|(p, _)| *p == path))
                    .map(|(_, v)| *v)
            };
            out.push_str(value.ok_or_else(|| DeployError::Template {
                file: file.path.display().to_string(),
                expr: expr.to_string(),
            })?);
            rest = &rest[end..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metrics-gateway\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: metrics-gateway\n  namespace: metrics-gateway\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - image: example.org/gw:1.0\n";

    #[test]
    fn chart_substitutes_namespace_image_and_replicas() {
        let files = helm_chart(BASE, "1.2.3").unwrap();
        let deployment = files
            .iter()
            .find(|f| f.path == Path::new("templates/deployment-metrics-gateway.yaml"))
            .unwrap();
        assert!(
            deployment
                .text
                .contains("namespace: {{ .Release.Namespace }}\n")
        );
        assert!(
            deployment
                .text
                .contains("replicas: {{ .Values.replicas }}\n")
        );
        assert!(
            deployment
                .text
                .contains("image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"")
        );
        assert!(!files.iter().any(|f| f.text.contains("kind: Namespace")));
        let values = &files
            .iter()
            .find(|f| f.path == Path::new("values.yaml"))
            .unwrap()
            .text;
        assert!(values.contains("repository: example.org/gw\n  tag: \"1.0\"\nreplicas: 2\n"));
    }

    #[test]
    fn rendering_with_other_values_changes_only_those() {
        let files = helm_chart(BASE, "1.2.3").unwrap();
        let out = render_chart(
            &files,
            "monitoring",
            &[
                ("image.repository", "r"),
                ("image.tag", "t"),
                ("replicas", "3"),
            ],
        )
        .unwrap();
        assert!(out.contains("namespace: monitoring\n"));
        assert!(out.contains("replicas: 3\n"));
        assert!(out.contains("image: \"r:t\"\n"));
    }

    #[test]
    fn unknown_template_expressions_are_refused() {
        let files = vec![ChartFile {
            path: "templates/x.yaml".into(),
            text: "a: {{ toYaml .Values.x }}\n".into(),
        }];
        let e = render_chart(&files, "ns", &[]).unwrap_err().to_string();
        assert!(
            e.contains("templates/x.yaml") && e.contains("toYaml"),
            "{e}"
        );
    }
}
