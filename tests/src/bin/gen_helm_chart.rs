//! Writes the Helm chart in `config/deploy/helm/metrics-gateway` from the kustomize base
//! (`scripts/gen-helm-chart.sh` runs it; `tests/tests/deploy.rs` fails when the chart is stale).

use anyhow::Context;
use metrics_gateway_testkit::deploy::{BASE_DIR, CHART_DIR, helm_chart, kustomize, repo_root};

fn main() -> anyhow::Result<()> {
    let root = repo_root();
    let base = kustomize(&root.join(BASE_DIR))?;
    let files = helm_chart(&base, env!("CARGO_PKG_VERSION"))?;
    let chart = root.join(CHART_DIR);
    let templates = chart.join("templates");
    if templates.exists() {
        std::fs::remove_dir_all(&templates)
            .with_context(|| format!("removing {}", templates.display()))?;
    }
    std::fs::create_dir_all(&templates)
        .with_context(|| format!("creating {}", templates.display()))?;
    for file in &files {
        let path = chart.join(&file.path);
        std::fs::write(&path, &file.text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}: {} files", chart.display(), files.len());
    Ok(())
}
