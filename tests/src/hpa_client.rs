//! The requests kube-controller-manager's HPA metrics client makes, made the same way: through
//! kube-apiserver's aggregated paths with the controller's bearer token, the `Accept` header of
//! its protobuf-preferring REST clients, the custom metrics version chosen from discovery as
//! `k8s.io/metrics`' `apiVersionsFromDiscovery` chooses it, object resources mapped from kinds
//! through discovery as its REST mapper does, selectors rendered as Go's `labels.Selector` and
//! query strings encoded as Go's `url.Values`. Answers are decoded with the strict
//! [`metrics_types`](crate::metrics_types), and the client's own checks (exactly one value for
//! an object, no empty answers) fail with the controller's messages.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroupList, APIResourceList, LabelSelector,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::metrics_types::{
    self, DecodeError, ExternalMetricValueList, MetricValue, MetricValueList,
    MetricValueListV1Beta1, PodMetricsList, TypeMetaError,
};

/// kube-controller-manager's identity for the HPA controller (its `--use-service-account-credentials`
/// service account).
pub const HPA_CONTROLLER_USER: &str = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";

/// `Accept` of kube-controller-manager's metrics clients: its REST config's content type
/// (`--kube-api-content-type`, default protobuf) followed by `*/*`, as client-go sends it.
pub const METRICS_ACCEPT: &str = "application/vnd.kubernetes.protobuf, */*";

/// `Accept` of client-go's discovery (aggregated discovery first, legacy JSON last).
pub const DISCOVERY_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// The `User-Agent` client-go builds for kube-controller-manager's HPA client.
pub const USER_AGENT: &str = "kube-controller-manager/v1.33.0 (linux/amd64) kubernetes/hpa-conformance/system:serviceaccount:kube-system:horizontal-pod-autoscaler";

/// The custom metrics group.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";

/// A custom metrics API version the client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomVersion {
    /// `custom.metrics.k8s.io/v1beta1`.
    V1Beta1,
    /// `custom.metrics.k8s.io/v1beta2`.
    V1Beta2,
}

impl CustomVersion {
    /// Both, oldest first.
    pub const ALL: [CustomVersion; 2] = [CustomVersion::V1Beta1, CustomVersion::V1Beta2];

    /// `v1beta1` or `v1beta2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CustomVersion::V1Beta1 => "v1beta1",
            CustomVersion::V1Beta2 => "v1beta2",
        }
    }

    /// `custom.metrics.k8s.io/{version}`.
    pub fn group_version(self) -> String {
        format!("{CUSTOM_GROUP}/{}", self.as_str())
    }

    fn from_group_version(gv: &str) -> Option<CustomVersion> {
        CustomVersion::ALL
            .into_iter()
            .find(|v| v.group_version() == gv)
    }
}

/// What the HPA names in an `Object` metric source (`describedObject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTarget {
    /// `apiVersion`, e.g. `apps/v1` or `v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment` or `Namespace`.
    pub kind: String,
    /// `name`.
    pub name: String,
}

/// Why an HPA metrics request failed, worded like the controller's errors where it has one.
#[derive(Debug, thiserror::Error)]
pub enum HpaClientError {
    /// The CA bundle or TLS configuration is unusable.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The request could not be sent or its answer not read.
    #[error("GET {path}: {message}")]
    Transport {
        /// Path and query.
        path: String,
        /// The cause.
        message: String,
    },
    /// The API server answered with an error status.
    #[error("GET {path}: HTTP {status}: {message}")]
    Status {
        /// Path and query.
        path: String,
        /// The status.
        status: StatusCode,
        /// The `Status` message, or the body.
        message: String,
    },
    /// The answer does not decode into the Go types.
    #[error("GET {path}: the answer does not match k8s.io/metrics' types {source}")]
    Decode {
        /// Path and query.
        path: String,
        /// Where and what.
        #[source]
        source: DecodeError,
    },
    /// The answer is of another kind or version.
    #[error("GET {path}: {source}")]
    Type {
        /// Path and query.
        path: String,
        /// What was found.
        #[source]
        source: TypeMetaError,
    },
    /// `apiVersionsFromDiscovery`: the group is not registered.
    #[error("no custom metrics API ({CUSTOM_GROUP}) registered")]
    NoCustomMetricsApi,
    /// `apiVersionsFromDiscovery`: no version the client knows.
    #[error("no known available metric versions found")]
    NoKnownVersion,
    /// The REST mapper found no resource for the kind.
    #[error("unable to map kind {kind}.{api_version} to resource")]
    NoResourceForKind {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
    },
    /// An object request must return exactly one value.
    #[error(
        "GET {path}: the custom metrics API server returned {count} results when we asked for exactly one"
    )]
    NotExactlyOne {
        /// Path and query.
        path: String,
        /// Values returned.
        count: usize,
    },
    /// The controller treats an empty answer as an error.
    #[error("GET {path}: no metrics returned from {api} metrics API")]
    NoMetrics {
        /// Path and query.
        path: String,
        /// `resource`, `custom` or `external`.
        api: &'static str,
    },
}

/// The HPA controller's metrics client, against kube-apiserver.
#[derive(Clone)]
pub struct HpaMetricsClient {
    base: String,
    token: String,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for HpaMetricsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpaMetricsClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HpaMetricsClient {
    /// A client for the API server at `base_url` (`https://host:port`) whose serving
    /// certificate chains to `ca_pem`, authenticating with `token`.
    pub fn new(base_url: &str, ca_pem: &str, token: &str) -> Result<Self, HpaClientError> {
        let tls_err = |e: &dyn std::fmt::Display| HpaClientError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.map_err(|e| tls_err(&e))?)
                .map_err(|e| tls_err(&e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(HpaMetricsClient {
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            sent: Arc::default(),
        })
    }

    /// Every request made so far, as `Accept` and path with query.
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One GET with this client's identity; the body of a 2xx answer.
    pub async fn get(&self, path: &str, accept: &str) -> Result<Bytes, HpaClientError> {
        let transport = |message: String| HpaClientError::Transport {
            path: path.to_owned(),
            message,
        };
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{accept} {path}"));
        let request = Request::get(format!("{}{path}", self.base))
            .header(header::ACCEPT, accept)
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Empty::new())
            .map_err(|e| transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| transport(format!("{e:?}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(HpaClientError::Status {
                path: path.to_owned(),
                status,
                message,
            });
        }
        Ok(body)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<T, HpaClientError> {
        let body = self.get(path, accept).await?;
        metrics_types::decode(&body).map_err(|source| HpaClientError::Decode {
            path: path.to_owned(),
            source,
        })
    }

    /// `ServerGroups()`: `GET /apis` as discovery asks for it.
    pub async fn server_groups(&self) -> Result<APIGroupList, HpaClientError> {
        let body = self.get("/apis", DISCOVERY_ACCEPT).await?;
        serde_json::from_slice(&body).map_err(|e| HpaClientError::Decode {
            path: "/apis".into(),
            source: DecodeError {
                path: String::new(),
                message: e.to_string(),
            },
        })
    }

    /// The custom metrics version the HPA uses: the group's preferred version when the client
    /// knows it, else the first known one in the group's list.
    pub async fn preferred_custom_version(&self) -> Result<CustomVersion, HpaClientError> {
        let groups = self.server_groups().await?;
        let group = groups
            .groups
            .iter()
            .find(|g| g.name == CUSTOM_GROUP)
            .ok_or(HpaClientError::NoCustomMetricsApi)?;
        group
            .preferred_version
            .as_ref()
            .and_then(|p| CustomVersion::from_group_version(&p.group_version))
            .or_else(|| {
                group
                    .versions
                    .iter()
                    .find_map(|v| CustomVersion::from_group_version(&v.group_version))
            })
            .ok_or(HpaClientError::NoKnownVersion)
    }

    /// The REST mapper's answer for an object's kind: `{resource}.{group}` (or `{resource}` for
    /// the core group), found in the group version's discovery document.
    pub async fn resource_for_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<String, HpaClientError> {
        let (group, path) = match api_version.split_once('/') {
            Some((group, _)) => (group, format!("/apis/{api_version}")),
            None => ("", format!("/api/{api_version}")),
        };
        let body = self.get(&path, "application/json, */*").await?;
        let list: APIResourceList =
            serde_json::from_slice(&body).map_err(|e| HpaClientError::Decode {
                path: path.clone(),
                source: DecodeError {
                    path: String::new(),
                    message: e.to_string(),
                },
            })?;
        let resource = list
            .resources
            .iter()
            .find(|r| r.kind == kind && !r.name.contains('/'))
            .ok_or_else(|| HpaClientError::NoResourceForKind {
                api_version: api_version.into(),
                kind: kind.into(),
            })?;
        Ok(if group.is_empty() {
            resource.name.clone()
        } else {
            format!("{}.{group}", resource.name)
        })
    }

    /// `Resource` and `ContainerResource` sources: `PodMetricses(ns).List(labelSelector)`.
    pub async fn resource_metrics(
        &self,
        namespace: &str,
        selector: &str,
    ) -> Result<PodMetricsList, HpaClientError> {
        let path = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods{}",
            query(&[("labelSelector", selector)])
        );
        let list: PodMetricsList = self.get_json(&path, METRICS_ACCEPT).await?;
        // Items of a list carry no kind of their own, as kube-apiserver serves them.
        type_check(
            &path,
            list.check_type("PodMetricsList", "metrics.k8s.io/v1beta1"),
        )?;
        if list.items.is_empty() {
            return Err(HpaClientError::NoMetrics {
                path,
                api: "resource",
            });
        }
        Ok(list)
    }

    async fn custom_list(
        &self,
        version: CustomVersion,
        path: &str,
    ) -> Result<MetricValueList, HpaClientError> {
        let list = match version {
            CustomVersion::V1Beta1 => {
                let list: MetricValueListV1Beta1 = self.get_json(path, METRICS_ACCEPT).await?;
                type_check(
                    path,
                    list.check_type("MetricValueList", &version.group_version()),
                )?;
                MetricValueList {
                    kind: list.kind,
                    api_version: list.api_version,
                    metadata: list.metadata,
                    items: list.items.into_iter().map(MetricValue::from).collect(),
                }
            }
            CustomVersion::V1Beta2 => {
                let list: MetricValueList = self.get_json(path, METRICS_ACCEPT).await?;
                type_check(
                    path,
                    list.check_type("MetricValueList", &version.group_version()),
                )?;
                list
            }
        };
        Ok(list)
    }

    /// `Pods` sources: `NamespacedMetrics(ns).GetForObjects(Pod, selector, metric,
    /// metricSelector)`, i.e. `…/namespaces/{ns}/pods/*/{metric}`.
    pub async fn pods_metric(
        &self,
        version: CustomVersion,
        namespace: &str,
        metric: &str,
        selector: &str,
        metric_selector: &str,
    ) -> Result<MetricValueList, HpaClientError> {
        let path = format!(
            "/apis/{}/namespaces/{namespace}/pods/*/{metric}{}",
            version.group_version(),
            query(&[
                ("labelSelector", selector),
                ("metricLabelSelector", metric_selector)
            ])
        );
        let list = self.custom_list(version, &path).await?;
        if list.items.is_empty() {
            return Err(HpaClientError::NoMetrics {
                path,
                api: "custom",
            });
        }
        Ok(list)
    }

    /// `Object` sources: a Namespace through `RootScopedMetrics().GetForObject` (the path
    /// `…/namespaces/{ns}/metrics/{metric}`, the HPA's own namespace whatever the name says),
    /// anything else through `NamespacedMetrics(ns).GetForObject` with the kind mapped to its
    /// resource. Exactly one value must come back.
    pub async fn object_metric(
        &self,
        version: CustomVersion,
        namespace: &str,
        object: &ObjectTarget,
        metric: &str,
        metric_selector: &str,
    ) -> Result<MetricValue, HpaClientError> {
        let group = object
            .api_version
            .split_once('/')
            .map_or("", |(group, _)| group);
        let params = query(&[("metricLabelSelector", metric_selector)]);
        let gv = version.group_version();
        let path = if object.kind == "Namespace" && group.is_empty() {
            format!("/apis/{gv}/namespaces/{namespace}/metrics/{metric}{params}")
        } else {
            let resource = self
                .resource_for_kind(&object.api_version, &object.kind)
                .await?;
            format!(
                "/apis/{gv}/namespaces/{namespace}/{resource}/{}/{metric}{params}",
                object.name
            )
        };
        let mut list = self.custom_list(version, &path).await?;
        if list.items.len() != 1 {
            return Err(HpaClientError::NotExactlyOne {
                path,
                count: list.items.len(),
            });
        }
        Ok(list.items.remove(0))
    }

    /// `External` sources: `NamespacedMetrics(ns).List(metric, selector)`.
    pub async fn external_metric(
        &self,
        namespace: &str,
        metric: &str,
        selector: &str,
    ) -> Result<ExternalMetricValueList, HpaClientError> {
        let path = format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}{}",
            query(&[("labelSelector", selector)])
        );
        let list: ExternalMetricValueList = self.get_json(&path, METRICS_ACCEPT).await?;
        type_check(
            &path,
            list.check_type("ExternalMetricValueList", "external.metrics.k8s.io/v1beta1"),
        )?;
        if list.items.is_empty() {
            return Err(HpaClientError::NoMetrics {
                path,
                api: "external",
            });
        }
        Ok(list)
    }
}

fn type_check(path: &str, result: Result<(), TypeMetaError>) -> Result<(), HpaClientError> {
    result.map_err(|source| HpaClientError::Type {
        path: path.to_owned(),
        source,
    })
}

/// `?k=v&…` as Go's `url.Values.Encode` writes versioned params: keys sorted, empty values left
/// out (the options' fields are `omitempty`), values escaped with `url.QueryEscape`.
pub fn query(params: &[(&str, &str)]) -> String {
    let mut params: Vec<_> = params.iter().filter(|(_, v)| !v.is_empty()).collect();
    params.sort();
    let pairs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `metav1.LabelSelector` as `metav1.LabelSelectorAsSelector(s).String()` renders it:
/// requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by `,`;
/// no selector (or an empty one) is the empty string.
pub fn selector_string(selector: Option<&LabelSelector>) -> Result<String, String> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        requirements.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let key = &e.key;
        let text = match e.operator.as_str() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            op => return Err(format!("{op:?} is not a valid label selector operator")),
        };
        requirements.push((key.clone(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    #[test]
    fn selectors_render_like_go() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("tier".into(), "web".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "app".into(),
                    operator: "In".into(),
                    values: Some(vec!["b".into(), "a".into()]),
                },
                LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_string(Some(&selector)).unwrap(),
            "app in (a,b),tier=web,!zone"
        );
        assert_eq!(selector_string(None).unwrap(), "");
        assert_eq!(
            selector_string(Some(&LabelSelector::default())).unwrap(),
            ""
        );
    }

    #[test]
    fn queries_encode_like_url_values() {
        assert_eq!(
            query(&[
                ("metricLabelSelector", "queue=jobs"),
                ("labelSelector", "app in (a,b)")
            ]),
            "?labelSelector=app+in+%28a%2Cb%29&metricLabelSelector=queue%3Djobs"
        );
        assert_eq!(query(&[("labelSelector", "")]), "");
    }
}
