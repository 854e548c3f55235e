//! The deploy manifests (`config/deploy/`, `Dockerfile`) against what the binary needs.
//!
//! `kubectl kustomize config/deploy/base` renders them; `kubectl apply --dry-run=client` maps
//! and decodes every object against the fake kube-apiserver's discovery; each object then
//! round-trips through the Kubernetes API types unchanged (a misspelt or misplaced field would
//! be dropped). On top, structural checks: the container arguments parse with the binary's own
//! CLI, the ConfigMap's gateway.toml loads with the binary's config loader and every plugin it
//! names loads and configures, probes and Service reach the listen port, the APIServices are
//! the groups the gateway serves, the RBAC rules allow every request the real gateway makes
//! (run against the fake apiserver and simulated kubelets), the pod is hardened, and the Helm
//! chart and the Dockerfile agree with the base.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use metrics_gateway::api::custom_metrics::{CUSTOM_GROUP, CUSTOM_VERSIONS};
use metrics_gateway::api::discovery::{METRICS_GROUP, METRICS_VERSION};
use metrics_gateway::api::external_metrics::{EXTERNAL_GROUP, EXTERNAL_VERSION};
use metrics_gateway::cli::{Cli, Command as CliCommand};
use metrics_gateway::demo::{GATEWAY_USER, RigPlugin};
use metrics_gateway_testkit::apiserver::{
    ApiServerConfig, Authorizer, FakeApiServer, ResourceAttributes, SubjectAccessReviewSpec,
    UserInfo,
};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::deploy::{
    BASE_DIR, BASE_NAMESPACE, CHART_DIR, ChartFile, documents, helm_chart, kustomize, render_chart,
    repo_root,
};
use metrics_gateway_testkit::loadgen::{Target, TlsTrust, client_tls, fetch};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the Dockerfile installs the shipped plugins.
const IMAGE_PLUGIN_DIR: &str = "/usr/lib/metrics-gateway/plugins";
/// The user the image runs as (distroless' nonroot).
const IMAGE_USER: i64 = 65532;
/// The health endpoints kubelets probe without credentials.
const HEALTH_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// The base's objects: as kubectl's client dry run printed them, and typed.
struct Manifests {
    objects: Vec<Value>,
    namespace: Namespace,
    service_account: ServiceAccount,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    role_bindings: Vec<RoleBinding>,
    deployment: Deployment,
    pdb: PodDisruptionBudget,
    service: Service,
    api_services: Vec<APIService>,
    config_map: ConfigMap,
    /// The `MetricsPlugin` CustomResourceDefinition, as kubectl printed it.
    crd: Value,
}

fn base_yaml() -> &'static str {
    static YAML: OnceLock<String> = OnceLock::new();
    YAML.get_or_init(|| kustomize(&repo_root().join(BASE_DIR)).expect("the base renders"))
}

fn base() -> &'static Manifests {
    static BASE: OnceLock<Manifests> = OnceLock::new();
    BASE.get_or_init(|| Manifests::from_objects(dry_run(base_yaml())))
}

/// `kubectl apply --dry-run=client -o json` of `yaml` against a fake kube-apiserver (for the
/// REST mapping; it stores none of these kinds, so every object is "created"). Returns the
/// objects, the last-applied annotation kubectl adds removed.
fn dry_run(yaml: &str) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = SimCluster::generate(
            &ClusterSpec {
                nodes: 1,
                pods_per_node: 1,
                ..ClusterSpec::default()
            },
            SimClock::Real,
        );
        let token = "deploy-test-token";
        let user = UserInfo {
            username: "deployer".into(),
            groups: vec!["system:authenticated".into()],
            uid: "deployer".into(),
        };
        let server = FakeApiServer::start(
            cluster,
            ApiServerConfig {
                tokens: BTreeMap::from([(token.to_string(), user)]),
                ..ApiServerConfig::default()
            },
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, token).unwrap();
        let expected = documents(yaml).len();
        let yaml = yaml.to_string();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = Command::new("kubectl")
                .args([
                    "apply",
                    "--dry-run=client",
                    "--validate=false",
                    "-o",
                    "json",
                    "-f",
                    "-",
                ])
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("kubectl runs");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(yaml.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        server.shutdown().await;
        assert!(
            out.status.success(),
            "kubectl apply --dry-run=client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
        let mut objects = match printed["kind"].as_str() {
            Some("List") => printed["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![printed],
        };
        for object in &mut objects {
            let annotations = object["metadata"]["annotations"]
                .as_object_mut()
                .expect("kubectl apply annotates every object");
            assert!(
                annotations
                    .remove("kubectl.kubernetes.io/last-applied-configuration")
                    .is_some(),
                "{object}"
            );
            if annotations.is_empty() {
                object["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }
        }
        assert_eq!(objects.len(), expected, "kubectl applied every document");
        objects
    })
}

/// `value` as a `T`, which must serialize back to the same JSON: a field the type does not
/// have (misspelt, misplaced) would be dropped and fail here, naming the object.
fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> T {
    let name = format!("{} {}", value["kind"], value["metadata"]["name"]);
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{name} does not decode as its API type: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{name}: some field is not part of the API type (compare the two)"
    );
    typed
}

impl Manifests {
    fn from_objects(objects: Vec<Value>) -> Manifests {
        let of_kind =
            |kind: &str| -> Vec<&Value> { objects.iter().filter(|o| o["kind"] == kind).collect() };
        let one = |kind: &str| -> &Value {
            let all = of_kind(kind);
            assert_eq!(all.len(), 1, "exactly one {kind}");
            all[0]
        };
        let known = [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "APIService",
            "ConfigMap",
            "CustomResourceDefinition",
        ];
        for o in &objects {
            assert!(
                known.contains(&o["kind"].as_str().unwrap_or("")),
                "unexpected object {}",
                o["kind"]
            );
        }
        Manifests {
            namespace: typed(one("Namespace")),
            service_account: typed(one("ServiceAccount")),
            cluster_roles: of_kind("ClusterRole").into_iter().map(typed).collect(),
            cluster_role_bindings: of_kind("ClusterRoleBinding")
                .into_iter()
                .map(typed)
                .collect(),
            role_bindings: of_kind("RoleBinding").into_iter().map(typed).collect(),
            deployment: typed(one("Deployment")),
            pdb: typed(one("PodDisruptionBudget")),
            service: typed(one("Service")),
            api_services: of_kind("APIService").into_iter().map(typed).collect(),
            config_map: typed(one("ConfigMap")),
            crd: one("CustomResourceDefinition").clone(),
            objects: objects.clone(),
        }
    }

    fn pod_spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("the Deployment has a pod spec")
    }

    fn container(&self) -> &Container {
        let containers = &self.pod_spec().containers;
        assert_eq!(containers.len(), 1, "one container");
        &containers[0]
    }

    fn pod_labels(&self) -> &BTreeMap<String, String> {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref())
            .expect("pod template labels")
    }

    /// The container port `port` names or numbers.
    fn container_port(&self, port: &IntOrString) -> i32 {
        let ports = self.container().ports.as_deref().unwrap_or_default();
        match port {
            IntOrString::Int(n) => {
                assert!(ports.iter().any(|p| p.container_port == *n), "no port {n}");
                *n
            }
            IntOrString::String(name) => {
                ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name))
                    .unwrap_or_else(|| panic!("no container port named {name}"))
                    .container_port
            }
        }
    }

    /// The mount path of volume `volume` in the container, and whether it is read-only.
    fn mount_of(&self, volume: &str) -> (PathBuf, bool) {
        let mount = self
            .container()
            .volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|m| m.name == volume)
            .unwrap_or_else(|| panic!("volume {volume} is not mounted"));
        (
            PathBuf::from(&mount.mount_path),
            mount.read_only.unwrap_or(false),
        )
    }

    /// The volume mounted at the directory containing `path`, with the path inside it.
    fn volume_holding(&self, path: &Path) -> (&k8s_openapi::api::core::v1::Volume, PathBuf, bool) {
        let mounts = self
            .container()
            .volume_mounts
            .as_deref()
            .unwrap_or_default();
        let mount = mounts
            .iter()
            .filter(|m| path.starts_with(&m.mount_path))
            .max_by_key(|m| m.mount_path.len())
            .unwrap_or_else(|| panic!("{} is on no mounted volume", path.display()));
        let volume = self
            .pod_spec()
            .volumes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("mount {} has no volume", mount.name));
        let inside = path.strip_prefix(&mount.mount_path).unwrap().to_path_buf();
        (volume, inside, mount.read_only.unwrap_or(false))
    }

    /// The config file the container's arguments name, parsed by the binary's own CLI.
    fn config_path(&self) -> PathBuf {
        let container = self.container();
        let mut argv = vec!["metrics-gateway".to_string()];
        argv.extend(container.command.iter().flatten().cloned());
        argv.extend(container.args.iter().flatten().cloned());
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| {
            panic!("the binary rejects the container's arguments {argv:?}: {e}")
        });
        match cli.command {
            CliCommand::Serve { config } => config,
            _ => panic!("the container does not run `serve`: {argv:?}"),
        }
    }

    /// The ConfigMap's gateway.toml, as the container sees it.
    fn gateway_toml(&self) -> &str {
        let path = self.config_path();
        let (volume, inside, _) = self.volume_holding(&path);
        let source = volume
            .config_map
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not on a ConfigMap volume", path.display()));
        assert_eq!(
            Some(&source.name),
            self.config_map.metadata.name.as_ref(),
            "the config volume names the ConfigMap"
        );
        let key = inside.to_str().unwrap();
        self.config_map
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .unwrap_or_else(|| panic!("the ConfigMap has no key {key}"))
    }
}

/// The ConfigMap's gateway.toml loaded by the binary's loader, plugin files mapped from the
/// image's directory to the ones `scripts/build-plugins.sh` built.
fn loaded_config(dir: &Path) -> metrics_gateway::config::Config {
    let mut table: toml::Table =
        toml::from_str(base().gateway_toml()).expect("gateway.toml is TOML");
    if let Some(toml::Value::Array(plugins)) = table.get_mut("plugins") {
        for plugin in plugins {
            let file = plugin["file"].as_str().expect("plugin file").to_string();
            let name = file
                .strip_prefix(IMAGE_PLUGIN_DIR)
                .and_then(|f| f.strip_prefix('/'))
                .and_then(|f| f.strip_suffix(".wasm"))
                .unwrap_or_else(|| {
                    panic!("plugin {file} is not in the image's {IMAGE_PLUGIN_DIR}")
                });
            plugin["file"] = toml::Value::String(common::plugin_wasm(name).display().to_string());
        }
    }
    // Re-serialized: errors name this copy's lines, but their key and message still point at
    // config/deploy/base/gateway.toml.
    let path = dir.join("gateway.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    metrics_gateway::config::load(&path)
        .unwrap_or_else(|e| panic!("config/deploy/base/gateway.toml, as loaded: {e}"))
}

#[test]
fn every_object_passes_a_client_dry_run_and_round_trips_through_its_api_type() {
    let m = base();
    assert_eq!(m.objects.len(), documents(base_yaml()).len());
    assert_eq!(m.namespace.metadata.name.as_deref(), Some(BASE_NAMESPACE));
    assert_eq!(m.api_services.len(), 4);
}

/// The property names of a schema object.
fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The field names of a serialized object.
fn field_names(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn metricsplugin_crd_is_the_resource_the_gateway_watches_with_its_types_schema() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use metrics_gateway::crd::spec::{
        Condition, GROUP, HttpsSource, KIND, KeyRef, MetricsPluginSpec, MetricsPluginStatus,
        ModuleSource, PLURAL, VERSION,
    };
    let crd_json = &base().crd;
    let crd: CustomResourceDefinition = serde_json::from_value(crd_json.clone())
        .unwrap_or_else(|e| panic!("the CRD does not decode as its API type: {e}"));
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some(format!("{PLURAL}.{GROUP}").as_str())
    );
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.kind, KIND);
    assert_eq!(crd.spec.names.plural, PLURAL);
    let [version] = crd.spec.versions.as_slice() else {
        panic!("one version")
    };
    assert_eq!(version.name, VERSION);
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Ready", "Reason", "Metrics", "Age"]);

    // Every field of the Rust types is in the schema and every schema property is a field.
    let schema = &crd_json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let key = KeyRef {
        namespace: "n".into(),
        name: "m".into(),
        key: "k".into(),
    };
    let full = MetricsPluginSpec {
        module: ModuleSource {
            config_map: Some(key.clone()),
            secret: Some(key),
            https: Some(HttpsSource {
                url: "https://x".into(),
                ca_bundle: Some("pem".into()),
            }),
            sha256: Some("0".repeat(64)),
        },
        order: 1,
        timeout_ms: 1,
        memory_mib: 1,
        max_output: 1,
        config: BTreeMap::new(),
    };
    let spec = serde_json::to_value(&full).unwrap();
    let pairs = [
        (&schema["spec"], &spec),
        (&schema["spec"]["properties"]["module"], &spec["module"]),
        (
            &schema["spec"]["properties"]["module"]["properties"]["configMap"],
            &spec["module"]["configMap"],
        ),
        (
            &schema["spec"]["properties"]["module"]["properties"]["https"],
            &spec["module"]["https"],
        ),
    ];
    for (schema, value) in pairs {
        assert_eq!(property_names(schema), field_names(value), "{value}");
    }
    let status = serde_json::to_value(MetricsPluginStatus {
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            observed_generation: 1,
            last_transition_time: "t".into(),
            reason: "r".into(),
            message: "m".into(),
        }],
        metrics: vec![],
    })
    .unwrap();
    assert_eq!(property_names(&schema["status"]), field_names(&status));
    assert_eq!(
        property_names(&schema["status"]["properties"]["conditions"]["items"]),
        field_names(&status["conditions"][0])
    );
    // The schema's defaults are the gateway's.
    let defaulted: MetricsPluginSpec =
        serde_json::from_value(serde_json::json!({"module": spec["module"].clone()})).unwrap();
    let props = &schema["spec"]["properties"];
    assert_eq!(props["timeoutMs"]["default"], defaulted.timeout_ms);
    assert_eq!(props["memoryMib"]["default"], defaulted.memory_mib);
    assert_eq!(props["maxOutput"]["default"], defaulted.max_output);
    assert_eq!(props["order"]["default"], defaulted.order);
}

#[test]
fn container_runs_serve_with_the_configmap_config_and_every_plugin_loads() {
    let m = base();
    let dir = tempfile::tempdir().unwrap();
    let config = loaded_config(dir.path());

    // TLS files come from the Secret volume, read-only.
    for file in [&config.server.tls_cert_file, &config.server.tls_key_file] {
        let file = file
            .as_ref()
            .expect("a serving certificate, not self-signed");
        let (volume, inside, read_only) = m.volume_holding(file.get_ref());
        let secret = volume
            .secret
            .as_ref()
            .expect("TLS files come from a Secret");
        assert!(read_only);
        assert!(
            ["tls.crt", "tls.key"].contains(&inside.to_str().unwrap()),
            "{} is not a kubernetes.io/tls key of {:?}",
            inside.display(),
            secret.secret_name
        );
    }
    assert!(!config.server.self_signed);

    // The plugin cache is writable (the root fs is not) and not on the ConfigMap.
    let cache = config
        .plugin_runtime
        .cache_dir
        .clone()
        .expect("plugin_runtime.cache_dir is set (the default is under $HOME, read-only)");
    let (volume, _, read_only) = m.volume_holding(&cache);
    assert!(
        volume.empty_dir.is_some() && !read_only,
        "cache_dir is on a writable emptyDir"
    );

    // Every plugin loads from its built component and configures, as `check-config` does.
    assert!(!config.plugins.is_empty());
    let telemetry = metrics_gateway::telemetry::Telemetry::new();
    let mut runtime_config = config.plugin_runtime.clone();
    runtime_config.cache_dir = Some(dir.path().join("cache"));
    let runtime =
        metrics_gateway::plugins::PluginRuntime::new(&runtime_config, &telemetry).unwrap();
    let errors = metrics_gateway::plugins::PluginSet::load(&runtime, &config).errors();
    assert!(errors.is_empty(), "plugins fail to load: {errors:?}");

    // The memory limit covers every plugin instance at its limit at once, plus the core.
    let limit = quantity_bytes(
        m.container()
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .expect("a memory limit"),
    );
    let plugins: u64 = config
        .plugins
        .iter()
        .map(|p| u64::from(p.memory_mib.get()) << 20)
        .sum();
    assert!(
        limit >= plugins + (512 << 20),
        "memory limit {limit} B < Σ plugin memory_mib {plugins} B + 512 MiB for the core"
    );
    let requests = m
        .container()
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    assert!(
        requests.is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")),
        "CPU and memory requests"
    );
}

/// Bytes of a memory quantity, parsed as Kubernetes parses it.
fn quantity_bytes(q: &Quantity) -> u64 {
    let parsed: metrics_gateway::api::quantity::Quantity =
        q.0.parse()
            .unwrap_or_else(|e| panic!("quantity {}: {e}", q.0));
    u64::try_from(parsed.value()).unwrap_or_else(|_| panic!("negative quantity {}", q.0))
}

#[test]
fn probes_and_service_reach_the_listen_port_over_https() {
    let m = base();
    let dir = tempfile::tempdir().unwrap();
    let listen_port = i32::from(loaded_config(dir.path()).server.listen_addr.port());
    let container = m.container();
    for (probe, path) in [
        (&container.liveness_probe, "/livez"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("an HTTP probe on {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{path} over HTTPS");
        assert_eq!(
            m.container_port(&get.port),
            listen_port,
            "{path} probe port"
        );
    }
    // Kubelets probe without credentials: health must stay outside authorization.
    let table: toml::Table = toml::from_str(m.gateway_toml()).unwrap();
    let always_allowed: Vec<&str> = table["authorization"]["always_allow_paths"]
        .as_array()
        .expect("authorization.always_allow_paths")
        .iter()
        .filter_map(toml::Value::as_str)
        .collect();
    for path in HEALTH_PATHS {
        assert!(
            always_allowed.contains(&path),
            "{path} is not always allowed"
        );
    }
    assert!(
        !always_allowed
            .iter()
            .any(|p| p.starts_with("/apis") || *p == "/metrics"),
        "only health paths may skip authorization: {always_allowed:?}"
    );

    let spec = m.service.spec.as_ref().unwrap();
    let ports = spec.ports.as_deref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 443);
    let target = ports[0]
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(443));
    assert_eq!(m.container_port(&target), listen_port, "Service targetPort");
    assert_eq!(
        spec.selector.as_ref(),
        Some(&selector_of(m)),
        "Service selects the pods"
    );
}

/// The Deployment's pod selector labels (which the pods carry).
fn selector_of(m: &Manifests) -> BTreeMap<String, String> {
    let labels = m
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .selector
        .match_labels
        .clone()
        .expect("matchLabels");
    for (k, v) in &labels {
        assert_eq!(
            m.pod_labels().get(k),
            Some(v),
            "pods carry the selector's {k}"
        );
    }
    labels
}

#[test]
fn api_services_are_the_served_groups_pointing_at_the_service() {
    let m = base();
    // The gateway's discovery lists versions preferred first: the highest versionPriority.
    let served: Vec<(&str, Vec<&str>)> = vec![
        (METRICS_GROUP, vec![METRICS_VERSION]),
        (CUSTOM_GROUP, CUSTOM_VERSIONS.to_vec()),
        (EXTERNAL_GROUP, vec![EXTERNAL_VERSION]),
    ];
    let mut registered = BTreeSet::new();
    for api in &m.api_services {
        let spec = api.spec.as_ref().unwrap();
        let group = spec.group.clone().unwrap();
        let version = spec.version.clone().unwrap();
        assert_eq!(
            api.metadata.name.as_deref(),
            Some(format!("{version}.{group}").as_str())
        );
        let service = spec.service.as_ref().expect("served by the Service");
        assert_eq!(service.name, m.service.metadata.name);
        assert_eq!(service.namespace, m.service.metadata.namespace);
        assert_eq!(service.port, Some(443));
        assert_ne!(
            spec.insecure_skip_tls_verify,
            Some(true),
            "{group}/{version}: kube-apiserver must verify the gateway"
        );
        let injected = api
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("cert-manager.io/inject-ca-from"));
        assert!(
            spec.ca_bundle.is_some() || injected,
            "{group}/{version}: caBundle or its injection"
        );
        registered.insert((group, version));
    }
    let expected: BTreeSet<(String, String)> = served
        .iter()
        .flat_map(|(g, vs)| vs.iter().map(|v| (g.to_string(), v.to_string())))
        .collect();
    assert_eq!(
        registered, expected,
        "one APIService per served group version"
    );

    for (group, versions) in &served {
        let of = |v: &str| {
            m.api_services
                .iter()
                .map(|a| a.spec.as_ref().unwrap())
                .find(|s| s.group.as_deref() == Some(group) && s.version.as_deref() == Some(v))
                .unwrap()
        };
        let priorities: Vec<i32> = versions.iter().map(|v| of(v).version_priority).collect();
        assert!(
            priorities.windows(2).all(|w| w[0] > w[1]),
            "{group}: versionPriority must follow the gateway's preference {versions:?}: {priorities:?}"
        );
        let groups: BTreeSet<i32> = versions
            .iter()
            .map(|v| of(v).group_priority_minimum)
            .collect();
        assert_eq!(groups.len(), 1, "{group}: one groupPriorityMinimum");
    }
    // As REFERENCE.md and the demo's registration: custom v1beta2 200, v1beta1 100.
    let custom: BTreeMap<&str, i32> = CUSTOM_VERSIONS
        .iter()
        .map(|v| {
            let spec = m
                .api_services
                .iter()
                .find(|a| a.metadata.name.as_deref() == Some(&format!("{v}.{CUSTOM_GROUP}")))
                .and_then(|a| a.spec.as_ref())
                .unwrap();
            (*v, spec.version_priority)
        })
        .collect();
    assert_eq!(custom.get("v1beta2"), Some(&200));
    assert_eq!(custom.get("v1beta1"), Some(&100));
}

#[test]
fn pod_is_hardened() {
    let m = base();
    let pod = m.pod_spec();
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(IMAGE_USER), "the image's user");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let csc = m
        .container()
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_ne!(csc.privileged, Some(true));
    assert_eq!(
        csc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert!(
        csc.capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_none_or(Vec::is_empty),
        "no capability added"
    );
    assert_eq!(pod.host_network, None);
    // The token only where it is used: not for every pod of the account.
    assert_eq!(
        m.service_account.automount_service_account_token,
        Some(false)
    );
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(
        pod.service_account_name.as_deref(),
        m.service_account.metadata.name.as_deref()
    );
    for (volume, _) in m
        .container()
        .volume_mounts
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), ()))
    {
        let (_, read_only) = m.mount_of(volume);
        let writable_ok = pod
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == volume && v.empty_dir.is_some());
        assert!(read_only || writable_ok, "volume {volume} is writable");
    }
}

#[test]
fn deployment_survives_losing_a_node() {
    let m = base();
    let spec = m.deployment.spec.as_ref().unwrap();
    let replicas = spec.replicas.unwrap_or(1);
    assert!(replicas >= 2, "at least 2 replicas");
    let selector = selector_of(m);
    let anti = m
        .pod_spec()
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .expect("pod anti-affinity");
    let terms: Vec<_> = anti
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .map(|w| &w.pod_affinity_term)
        .chain(
            anti.required_during_scheduling_ignored_during_execution
                .iter()
                .flatten(),
        )
        .collect();
    assert!(
        terms
            .iter()
            .any(|t| t.topology_key == "kubernetes.io/hostname"
                && t.label_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref())
                    == Some(&selector)),
        "replicas kept apart by hostname"
    );
    let pdb = m.pdb.spec.as_ref().unwrap();
    assert_eq!(
        pdb.selector.as_ref().and_then(|s| s.match_labels.as_ref()),
        Some(&selector),
        "the PDB covers the pods"
    );
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    assert!(
        replicas > 1,
        "a PDB of minAvailable 1 needs 2 replicas to allow an eviction"
    );
}

/// RBAC rules that apply to one subject: cluster-wide, and per namespace.
#[derive(Default)]
struct Rbac {
    cluster: Vec<PolicyRule>,
    namespaced: Vec<(String, PolicyRule)>,
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        resource_names: (!names.is_empty()).then(|| strings(names).unwrap()),
        non_resource_urls: None,
    }
}

/// The rules of the roles Kubernetes bootstraps that the manifests bind (from kube-apiserver's
/// bootstrap policy).
fn builtin_role(kind: &str, name: &str) -> Option<Vec<PolicyRule>> {
    match (kind, name) {
        ("ClusterRole", "system:auth-delegator") => Some(vec![
            rule(
                &["authentication.k8s.io"],
                &["tokenreviews"],
                &["create"],
                &[],
            ),
            rule(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
                &[],
            ),
        ]),
        ("Role", "extension-apiserver-authentication-reader") => Some(vec![rule(
            &[""],
            &["configmaps"],
            &["get", "list", "watch"],
            &["extension-apiserver-authentication"],
        )]),
        _ => None,
    }
}

impl Manifests {
    /// A ClusterRole's rules; for an aggregated one, as the clusterrole-aggregation controller
    /// fills them: the rules of every ClusterRole of the manifests its selectors match.
    fn effective_rules(&self, role: &ClusterRole) -> Vec<PolicyRule> {
        let Some(aggregation) = &role.aggregation_rule else {
            return role.rules.clone().unwrap_or_default();
        };
        let selectors = aggregation
            .cluster_role_selectors
            .clone()
            .unwrap_or_default();
        let selected = |r: &ClusterRole| {
            let labels = r.metadata.labels.clone().unwrap_or_default();
            selectors.iter().any(|s| {
                assert!(s.match_expressions.is_none(), "matchLabels only");
                s.match_labels
                    .iter()
                    .flatten()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
        };
        self.cluster_roles
            .iter()
            .filter(|r| r.aggregation_rule.is_none() && selected(r))
            .flat_map(|r| r.rules.clone().unwrap_or_default())
            .collect()
    }
}

impl Rbac {
    /// What the manifests grant `subject` (a ServiceAccount).
    fn for_subject(m: &Manifests, subject: &Subject) -> Rbac {
        let binds = |subjects: &Option<Vec<Subject>>| {
            subjects.iter().flatten().any(|s| {
                s.kind == subject.kind && s.name == subject.name && s.namespace == subject.namespace
            })
        };
        let role_rules = |kind: &str, name: &str| -> Vec<PolicyRule> {
            let own = m
                .cluster_roles
                .iter()
                .find(|r| kind == "ClusterRole" && r.metadata.name.as_deref() == Some(name));
            if let Some(role) = own {
                return m.effective_rules(role);
            }
            builtin_role(kind, name)
                .unwrap_or_else(|| panic!("{kind} {name} is neither in the manifests nor built in"))
        };
        let mut rbac = Rbac::default();
        for b in m
            .cluster_role_bindings
            .iter()
            .filter(|b| binds(&b.subjects))
        {
            rbac.cluster
                .extend(role_rules(&b.role_ref.kind, &b.role_ref.name));
        }
        for b in m.role_bindings.iter().filter(|b| binds(&b.subjects)) {
            let ns = b.metadata.namespace.clone().expect("RoleBinding namespace");
            for r in role_rules(&b.role_ref.kind, &b.role_ref.name) {
                rbac.namespaced.push((ns.clone(), r));
            }
        }
        rbac
    }

    fn allows(&self, a: &ResourceAttributes) -> bool {
        let has =
            |list: &Option<Vec<String>>, v: &str| list.iter().flatten().any(|x| x == "*" || x == v);
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let matches = |r: &PolicyRule| {
            r.verbs.iter().any(|v| v == "*" || *v == a.verb)
                && has(&r.api_groups, &a.group)
                && has(&r.resources, &resource)
                && r.resource_names
                    .as_ref()
                    .is_none_or(|n| n.contains(&a.name))
        };
        self.cluster.iter().any(matches)
            || self
                .namespaced
                .iter()
                .any(|(ns, r)| *ns == a.namespace && matches(r))
    }
}

/// The kubelet's authorization of a path (kubelet's `server/auth.go`): a GET of a node
/// subresource.
fn kubelet_attributes(node: &str, path: &str) -> ResourceAttributes {
    let subresource = if path.starts_with("/stats") {
        "stats"
    } else if path.starts_with("/metrics") {
        "metrics"
    } else {
        "proxy"
    };
    ResourceAttributes {
        verb: "get".into(),
        resource: "nodes".into(),
        subresource: subresource.into(),
        name: node.into(),
        ..ResourceAttributes::default()
    }
}

/// The kubelet paths the simulated kubelets count per path.
const KUBELET_PATHS: [&str; 4] = [
    "/metrics/resource",
    "/stats/summary",
    "/metrics/cadvisor",
    "/healthz",
];

#[test]
fn rbac_allows_every_request_the_gateway_makes_with_the_shipped_config() {
    let m = base();
    let account = Subject {
        kind: "ServiceAccount".into(),
        name: m.service_account.metadata.name.clone().unwrap(),
        namespace: m.service_account.metadata.namespace.clone(),
        api_group: None,
    };
    let rbac = Arc::new(Rbac::for_subject(m, &account));
    // The fake apiserver reviews every request of the gateway against the manifests' RBAC.
    // Denials are recorded and the request let through, so the test lists every gap at once.
    let denied: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let authorizer: Authorizer = {
        let (rbac, denied) = (rbac.clone(), denied.clone());
        Arc::new(move |spec: &SubjectAccessReviewSpec| {
            if spec.user == GATEWAY_USER {
                match &spec.resource_attributes {
                    Some(a) if rbac.allows(a) => {}
                    Some(a) => {
                        denied.lock().unwrap().insert(format!(
                            "{} {}{}{} (namespace {:?}, name {:?})",
                            a.verb,
                            if a.group.is_empty() {
                                String::new()
                            } else {
                                format!("{}/", a.group)
                            },
                            a.resource,
                            if a.subresource.is_empty() {
                                String::new()
                            } else {
                                format!("/{}", a.subresource)
                            },
                            a.namespace,
                            a.name
                        ));
                    }
                    // Discovery (/api, /apis, /version) is open to every authenticated user
                    // through the bootstrap system:discovery binding.
                    None => {}
                }
            }
            true
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let config = loaded_config(dir.path());
    let plugins: Vec<RigPlugin> = config
        .plugins
        .iter()
        .map(|p| RigPlugin {
            name: p.name.get_ref().clone(),
            file: p.file.get_ref().clone(),
            timeout_ms: Some(p.timeout_ms.get()),
            memory_mib: Some(p.memory_mib.get()),
            config: p.config.clone(),
        })
        .collect();
    let spec = ClusterSpec {
        nodes: 2,
        pods_per_node: 3,
        ..ClusterSpec::default()
    };
    // base() runs kubectl on a runtime of its own: load it before entering this one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_shipped_config(spec, plugins, authorizer));

    let denied = denied.lock().unwrap();
    assert!(
        denied.is_empty(),
        "the manifests' RBAC does not allow what the gateway does:\n{}",
        denied.iter().cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Runs two cycles of the gateway with `plugins` against the simulated cluster, the fake
/// apiserver reviewing its requests with `authorizer`, which also reviews the kubelet paths
/// it scraped (as kubelets do); checks that the probe paths answer without credentials.
async fn run_shipped_config(spec: ClusterSpec, plugins: Vec<RigPlugin>, authorizer: Authorizer) {
    let kubelet_review = authorizer.clone();
    let (rig, clock) = common::rig_with(spec, |o| {
        o.plugins = plugins;
        o.apiserver.authorizer = authorizer;
    })
    .await;
    for _ in 0..2 {
        rig.gateway.collector.run_cycle().await;
        clock.advance(std::time::Duration::from_secs(15));
    }

    let nodes: Vec<String> = rig.cluster.read().nodes.keys().cloned().collect();
    let mut scraped = BTreeSet::new();
    for node in &nodes {
        let counted: u64 = KUBELET_PATHS
            .iter()
            .map(|p| rig.kubelets.scrape_count_path(node, p))
            .sum();
        assert_eq!(
            counted,
            rig.kubelets.scrape_count(node),
            "the gateway asked {node}'s kubelet for a path the test does not map to RBAC"
        );
        for path in KUBELET_PATHS {
            if rig.kubelets.scrape_count_path(node, path) > 0 {
                scraped.insert(path);
                // As the kubelet does: a SubjectAccessReview for the gateway's user.
                let review = SubjectAccessReviewSpec {
                    resource_attributes: Some(kubelet_attributes(node, path)),
                    user: GATEWAY_USER.into(),
                    ..SubjectAccessReviewSpec::default()
                };
                kubelet_review(&review);
            }
        }
    }
    assert!(scraped.contains("/metrics/resource"), "{scraped:?}");
    assert!(
        scraped.contains("/stats/summary"),
        "pod-network reads the Summary API: {scraped:?}"
    );

    // The probes' paths answer without credentials once a cycle completed.
    let tls = client_tls(TlsTrust::AcceptAny).unwrap();
    for path in HEALTH_PATHS {
        let url = format!("https://{}{path}", rig.gateway.local_addr);
        let target = Target::from_url(&url, Some(tls.clone())).await.unwrap();
        let (status, body) = fetch(&target).await.unwrap();
        assert_eq!(
            status.as_u16(),
            200,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    rig.shutdown().await;
}

/// What the shipped RBAC grants the gateway's ServiceAccount, with `extra` objects added to the
/// manifests.
fn gateway_rbac(extra: &[Value]) -> Rbac {
    let mut objects = base().objects.clone();
    objects.extend_from_slice(extra);
    let m = Manifests::from_objects(objects);
    let account = Subject {
        kind: "ServiceAccount".into(),
        name: m.service_account.metadata.name.clone().unwrap(),
        namespace: m.service_account.metadata.namespace.clone(),
        api_group: None,
    };
    Rbac::for_subject(&m, &account)
}

fn lists_and_watches(rbac: &Rbac, group: &str, resource: &str) -> bool {
    ["list", "watch"].iter().all(|verb| {
        rbac.allows(&ResourceAttributes {
            verb: (*verb).into(),
            group: group.into(),
            resource: resource.into(),
            ..ResourceAttributes::default()
        })
    })
}

#[test]
fn described_resources_are_granted_through_an_aggregated_role_users_extend() {
    let rbac = gateway_rbac(&[]);
    for (group, resource) in [
        ("", "services"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("networking.k8s.io", "ingresses"),
    ] {
        assert!(
            lists_and_watches(&rbac, group, resource),
            "the gateway cannot watch {resource} in {group:?}"
        );
    }
    assert!(!lists_and_watches(&rbac, "", "secrets"), "no Secrets");
    assert!(!lists_and_watches(&rbac, "example.com", "widgets"));
    // A custom resource: one labelled ClusterRole, as docs/PLUGINS.md shows.
    let user_role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": "metrics-gateway:widgets",
            "labels": {"metrics-gateway.io/aggregate-to-gateway": "true"},
        },
        "rules": [{
            "apiGroups": ["example.com"],
            "resources": ["widgets"],
            "verbs": ["list", "watch"],
        }],
    });
    let rbac = gateway_rbac(&[user_role]);
    assert!(lists_and_watches(&rbac, "example.com", "widgets"));
    assert!(!lists_and_watches(&rbac, "example.com", "gadgets"));
}

#[test]
fn rbac_grants_only_reads_and_reviews() {
    let m = base();
    for role in &m.cluster_roles {
        for r in role.rules.iter().flatten() {
            for verb in &r.verbs {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "ClusterRole {:?} grants {verb}",
                    role.metadata.name
                );
            }
        }
    }
    let delegator = m
        .cluster_role_bindings
        .iter()
        .any(|b| b.role_ref.kind == "ClusterRole" && b.role_ref.name == "system:auth-delegator");
    assert!(
        delegator,
        "TokenReview and SubjectAccessReview need system:auth-delegator"
    );
    let reader = m.role_bindings.iter().any(|b| {
        b.metadata.namespace.as_deref() == Some("kube-system")
            && b.role_ref.kind == "Role"
            && b.role_ref.name == "extension-apiserver-authentication-reader"
    });
    assert!(
        reader,
        "the authentication ConfigMap needs the reader RoleBinding in kube-system"
    );
}

#[test]
fn helm_chart_is_generated_from_the_base_and_renders_the_same_objects() {
    let root = repo_root();
    let chart_dir = root.join(CHART_DIR);
    let generated = helm_chart(base_yaml(), env!("CARGO_PKG_VERSION")).unwrap();
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(chart_dir.join("templates")).expect("the chart's templates") {
        on_disk.insert(PathBuf::from("templates").join(entry.unwrap().file_name()));
    }
    for file in &generated {
        let text = std::fs::read_to_string(chart_dir.join(&file.path)).unwrap_or_default();
        assert!(
            text == file.text,
            "{CHART_DIR}/{} is stale: run scripts/gen-helm-chart.sh",
            file.path.display()
        );
        on_disk.remove(&file.path);
    }
    assert!(
        on_disk.is_empty(),
        "stale templates {on_disk:?}: run scripts/gen-helm-chart.sh"
    );

    // Rendered with values.yaml's defaults, the chart's objects are the base's (less the
    // Namespace, which Helm's --create-namespace makes), through the same dry run.
    let values = chart_values(&generated);
    let values: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let rendered = render_chart(&generated, BASE_NAMESPACE, &values).unwrap();
    let from_chart = dry_run(&rendered);
    let from_base: Vec<&Value> = base()
        .objects
        .iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    assert_eq!(from_chart.iter().collect::<Vec<_>>(), from_base);
}

/// `values.yaml`'s leaves as (dotted path, value without quotes).
fn chart_values(files: &[ChartFile]) -> Vec<(String, String)> {
    let text = &files
        .iter()
        .find(|f| f.path == Path::new("values.yaml"))
        .unwrap()
        .text;
    let mut out = Vec::new();
    let mut parent = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let (key, value) = line.split_once(':').unwrap();
        let value = value.trim().trim_matches('"');
        if line.starts_with(' ') {
            out.push((format!("{parent}.{}", key.trim()), value.to_string()));
        } else if value.is_empty() {
            parent = key.to_string();
        } else {
            out.push((key.to_string(), value.to_string()));
        }
    }
    out
}

#[test]
fn image_and_dockerfile_agree_with_the_manifests() {
    let m = base();
    let image = m.container().image.clone().unwrap();
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "image {image} is tagged with the workspace version"
    );
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(
        last_stage.starts_with("gcr.io/distroless/"),
        "the final stage is distroless: {}",
        last_stage.lines().next().unwrap()
    );
    assert!(
        last_stage.contains(&format!("\nUSER {IMAGE_USER}:{IMAGE_USER}\n")),
        "the image runs as {IMAGE_USER}"
    );
    assert!(last_stage.contains("\nENTRYPOINT [\"/usr/bin/metrics-gateway\"]\n"));
    assert!(
        last_stage.contains(&format!(" {IMAGE_PLUGIN_DIR}/\n")),
        "the image installs the plugins in {IMAGE_PLUGIN_DIR}"
    );
    assert!(
        dockerfile.contains("for dir in plugins/*/"),
        "the builder builds every shipped plugin"
    );
    // Each configured plugin is one the builder makes: plugins/NAME → NAME.wasm.
    let table: toml::Table = toml::from_str(m.gateway_toml()).unwrap();
    for plugin in table["plugins"].as_array().unwrap() {
        let file = plugin["file"].as_str().unwrap();
        let name = file
            .strip_prefix(&format!("{IMAGE_PLUGIN_DIR}/"))
            .and_then(|f| f.strip_suffix(".wasm"))
            .unwrap_or_else(|| panic!("{file} is not a shipped plugin"));
        assert!(
            repo_root()
                .join("plugins")
                .join(name)
                .join("Cargo.toml")
                .exists(),
            "{file}: no plugin crate plugins/{name}"
        );
    }
}

#[test]
fn cert_manager_overlay_issues_the_mounted_serving_certificate() {
    let yaml = kustomize(&repo_root().join("config/deploy/cert-manager")).unwrap();
    let m = base();
    let secret = m
        .pod_spec()
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.clone())
        .expect("the serving certificate's Secret");
    let service = m.service.metadata.name.clone().unwrap();
    let certificate = documents(&yaml)
        .into_iter()
        .find(|d| d.contains("kind: Certificate") && d.contains(&format!("secretName: {secret}\n")))
        .unwrap_or_else(|| panic!("no Certificate writes {secret}"));
    let dns = format!("- {service}.{BASE_NAMESPACE}.svc\n");
    assert!(certificate.contains(&dns), "the certificate names {dns}");
    assert!(
        certificate.contains(&format!("name: {secret}\n")),
        "the APIServices' inject-ca-from names it"
    );
    for api in &m.api_services {
        let from = api
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cert-manager.io/inject-ca-from"));
        assert_eq!(from, Some(&format!("{BASE_NAMESPACE}/{secret}")));
    }
}
