//! An open-loop HTTP/1.1 load generator over TLS, for latency figures that a slow server cannot
//! flatter.
//!
//! Request `i` is *scheduled* at `t0 + i / rate`, whatever happened to earlier requests. A pacing
//! thread releases each request at its scheduled instant into a queue that `connections`
//! keep-alive connections take from; a request waits in the queue while every connection is busy.
//! Its latency is measured from the scheduled instant to the end of the response body, so time
//! spent queued behind a slow response counts (wrk2's correction for coordinated omission).
//! The service time — from the moment a connection actually sent the request — is reported too,
//! to tell queueing from serving.
//!
//! The same module offers one-shot GETs ([`fetch`]) for polling `/metrics` or an HTTP API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pki::AcceptAnyServerCert;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::sync::{Mutex, mpsc};

/// What went wrong while setting up or sending a request.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The load parameters make no sense.
    #[error("invalid load spec: {0}")]
    Spec(String),
    /// Building the TLS client configuration failed.
    #[error("TLS client configuration: {0}")]
    TlsConfig(#[source] rustls::Error),
    /// The TCP connection failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/1.1 handshake, request or response failed.
    #[error("HTTP exchange with {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// The response took longer than the request timeout.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// The server answered with a status other than 2xx.
    #[error("HTTP status {0}")]
    Status(StatusCode),
}

/// How server certificates are checked.
#[derive(Debug, Clone)]
pub enum TlsTrust {
    /// Accept any certificate (handshake signatures are still verified): for self-signed test
    /// servers only.
    AcceptAny,
    /// Verify the chain against these roots and the target's server name.
    Roots(rustls::RootCertStore),
}

/// A rustls client configuration offering only HTTP/1.1 (ALPN), with ring as the provider.
pub fn client_tls(trust: TlsTrust) -> Result<Arc<rustls::ClientConfig>, LoadError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(LoadError::TlsConfig)?;
    let mut config = match trust {
        TlsTrust::AcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth(),
        TlsTrust::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One URL to send `GET`s to: where to connect, how, and what to ask.
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
    tls: Option<(ServerName<'static>, Arc<rustls::ClientConfig>)>,
    bearer: Option<String>,
}

impl Target {
    /// A target for an `http://` or `https://` URL; `https` needs `tls`. The host is resolved
    /// now; the TLS server name is the URL's host unless [`Target::with_server_name`] says
    /// otherwise.
    pub async fn from_url(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Target, LoadError> {
        let bad = |reason: &str| LoadError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((bare_host, port))
            .await
            .map_err(|e| bad(&format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| bad("host resolves to no address"))?;
        let tls = if https {
            let config = tls.ok_or_else(|| bad("https needs a TLS client configuration"))?;
            let name = ServerName::try_from(bare_host.to_string())
                .map_err(|e| bad(&format!("TLS server name: {e}")))?;
            Some((name, config))
        } else {
            None
        };
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| bad("no authority"))?;
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Ok(Target {
            addr,
            authority,
            path,
            tls,
            bearer: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Target {
        self.bearer = Some(token.into());
        self
    }

    /// Verifies the server certificate against `name` instead of the URL's host (no effect on
    /// `http` targets).
    pub fn with_server_name(mut self, name: &str) -> Result<Target, LoadError> {
        if let Some((server_name, _)) = &mut self.tls {
            *server_name = ServerName::try_from(name.to_string()).map_err(|e| LoadError::Url {
                url: name.to_string(),
                reason: format!("TLS server name: {e}"),
            })?;
        }
        Ok(self)
    }

    /// The same endpoint with another path (and query).
    pub fn with_path(&self, path_and_query: &str) -> Target {
        Target {
            path: path_and_query.to_string(),
            ..self.clone()
        }
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The path and query requested.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Opens one keep-alive HTTP/1.1 connection.
    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, LoadError> {
        let addr = self.addr;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        tcp.set_nodelay(true)
            .map_err(|source| LoadError::Connect { addr, source })?;
        let http = |source| LoadError::Http { addr, source };
        match &self.tls {
            Some((name, config)) => {
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| LoadError::Tls { addr, source })?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(http)?;
                tokio::spawn(conn);
                Ok(sender)
            }
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(http)?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let mut builder =
            Request::get(self.path.as_str()).header(http::header::HOST, &self.authority);
        if let Some(token) = &self.bearer {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .body(Empty::new())
            .expect("a path that parsed as part of a URI is a valid request target")
    }

    /// One GET on `sender`; the status and the whole body.
    async fn exchange(
        &self,
        sender: &mut SendRequest<Empty<Bytes>>,
    ) -> Result<(StatusCode, Bytes), LoadError> {
        let addr = self.addr;
        let http = |source| LoadError::Http { addr, source };
        sender.ready().await.map_err(http)?;
        let response = sender.send_request(self.request()).await.map_err(http)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok((status, body))
    }
}

/// One GET on a fresh connection: the status and the whole body, whatever the status.
pub async fn fetch(target: &Target) -> Result<(StatusCode, Bytes), LoadError> {
    let mut sender = target.connect().await?;
    target.exchange(&mut sender).await
}

/// A kept-alive connection for repeated GETs (polling), reopened when it fails.
#[derive(Debug)]
pub struct Session {
    target: Target,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Session {
    /// A session to `target`'s endpoint; connects on first use.
    pub fn new(target: Target) -> Session {
        Session {
            target,
            sender: None,
        }
    }

    /// `GET path_and_query`: the status and the whole body, whatever the status.
    pub async fn get(&mut self, path_and_query: &str) -> Result<(StatusCode, Bytes), LoadError> {
        let target = self.target.with_path(path_and_query);
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            slot => slot.insert(target.connect().await?),
        };
        let result = target.exchange(sender).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// How much load, for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// Requests per second, scheduled at a fixed interval.
    pub rate_per_sec: f64,
    /// How long requests are scheduled for: `floor(rate × duration)` requests in all.
    pub duration: Duration,
    /// Keep-alive connections, opened before the clock starts.
    pub connections: usize,
    /// A request not answered this long after it was sent is an error (and its connection is
    /// replaced).
    pub timeout: Duration,
}

impl LoadSpec {
    /// The number of requests scheduled.
    pub fn total_requests(&self) -> u64 {
        (self.rate_per_sec * self.duration.as_secs_f64()).floor() as u64
    }

    /// When request `i` is due, relative to the start.
    pub fn scheduled_offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate_per_sec)
    }
}

/// Latency percentiles by nearest rank: the `p`-th percentile is the smallest sample that at
/// least `p`% of the samples do not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Percentiles {
    /// Percentiles of `samples` (sorted in place); `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<Percentiles> {
        samples.sort_unstable();
        let max = *samples.last()?;
        Some(Percentiles {
            count: samples.len(),
            p50: percentile(samples, 50.0),
            p90: percentile(samples, 90.0),
            p99: percentile(samples, 99.0),
            p999: percentile(samples, 99.9),
            max,
        })
    }
}

impl Percentiles {
    /// Percentiles of the latency and of the service time of `timings`.
    pub fn of_timings<'a>(
        timings: impl Iterator<Item = &'a Timing>,
    ) -> (Option<Percentiles>, Option<Percentiles>) {
        let (mut latency, mut service): (Vec<Duration>, Vec<Duration>) =
            timings.map(|t| (t.latency, t.service)).unzip();
        (
            Percentiles::from_samples(&mut latency),
            Percentiles::from_samples(&mut service),
        )
    }
}

/// The nearest-rank `p`-th percentile (0 < `p` ≤ 100) of ascending `sorted`; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Rank ⌈p/100 · n⌉, computed in integers (per-mille of a per-cent) so that e.g. 99.9 % of
    // 1,000 samples is exactly rank 999.
    let n = sorted.len() as u128;
    let milli_p = (p * 1000.0).round().clamp(0.0, 100_000.0) as u128;
    let rank = (milli_p * n).div_ceil(100_000).max(1);
    sorted[(rank - 1) as usize]
}

/// One successful request's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When it was due, from the start of the schedule.
    pub due: Duration,
    /// From due to the end of the response.
    pub latency: Duration,
    /// From sending to the end of the response.
    pub service: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests answered with a 2xx status and a complete body.
    pub ok: u64,
    /// Requests that failed (connection, TLS, HTTP, timeout or non-2xx status).
    pub errors: u64,
    /// The first failure, for the log.
    pub first_error: Option<String>,
    /// Response bytes received in successful requests (bodies only).
    pub body_bytes: u64,
    /// Latency of successful requests from their scheduled instant.
    pub latency: Option<Percentiles>,
    /// Latency of successful requests from the moment a connection sent them.
    pub service: Option<Percentiles>,
    /// Every successful request, in completion order per connection.
    pub timings: Vec<Timing>,
    /// The start of the schedule (request 0 was due then).
    pub started: Instant,
    /// From `started` to the last response.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Achieved throughput of successful requests.
    pub fn ok_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

#[derive(Default)]
struct WorkerTally {
    timings: Vec<Timing>,
    ok: u64,
    errors: u64,
    body_bytes: u64,
    first_error: Option<String>,
}

/// Sends `spec.total_requests()` GETs to `target` on the fixed schedule and measures them.
/// Fails only if the spec is invalid or a connection cannot be opened before the start;
/// failures during the run are counted in the report.
pub async fn run(target: &Target, spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    if !(spec.rate_per_sec.is_finite() && spec.rate_per_sec > 0.0) {
        return Err(LoadError::Spec(format!(
            "rate must be positive, got {}",
            spec.rate_per_sec
        )));
    }
    if spec.connections == 0 {
        return Err(LoadError::Spec("at least one connection is needed".into()));
    }
    let mut senders = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        senders.push(target.connect().await?);
    }
    let total = spec.total_requests();
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let queue = Arc::new(Mutex::new(rx));
    let started = Instant::now();
    let pacer_spec = spec.clone();
    // A plain thread paces the schedule: its sleeps are as fine as the OS timer allows, where
    // tokio's timer would round each one up to the next millisecond.
    let pacer = std::thread::Builder::new()
        .name("loadgen-pacer".into())
        .spawn(move || {
            for i in 0..total {
                let due = started + pacer_spec.scheduled_offset(i);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if tx.send(due).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| LoadError::Spec(format!("starting the pacing thread: {e}")))?;

    let mut workers = tokio::task::JoinSet::new();
    for sender in senders {
        let (target, queue, timeout) = (target.clone(), queue.clone(), spec.timeout);
        workers.spawn(async move {
            let mut tally = WorkerTally::default();
            let mut sender = Some(sender);
            loop {
                let due = {
                    let mut rx = queue.lock().await;
                    match rx.recv().await {
                        Some(due) => due,
                        None => break,
                    }
                };
                let sent = Instant::now();
                let outcome = tokio::time::timeout(timeout, async {
                    let conn = match &mut sender {
                        Some(s) if !s.is_closed() => s,
                        slot => slot.insert(target.connect().await?),
                    };
                    target.exchange(conn).await
                })
                .await
                .unwrap_or(Err(LoadError::Timeout(timeout)));
                let done = Instant::now();
                let failure = match outcome {
                    Ok((status, body)) if status.is_success() => {
                        tally.ok += 1;
                        tally.body_bytes += body.len() as u64;
                        tally.timings.push(Timing {
                            due: due - started,
                            latency: done - due,
                            service: done - sent,
                        });
                        continue;
                    }
                    Ok((status, _)) => LoadError::Status(status),
                    Err(e) => {
                        // Whatever state the connection is in, it is not trusted again.
                        sender = None;
                        e
                    }
                };
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| failure.to_string());
            }
            tally
        });
    }
    let mut all = WorkerTally::default();
    while let Some(joined) = workers.join_next().await {
        let tally = joined.expect("load workers do not panic");
        all.timings.extend(tally.timings);
        all.ok += tally.ok;
        all.errors += tally.errors;
        all.body_bytes += tally.body_bytes;
        if all.first_error.is_none() {
            all.first_error = tally.first_error;
        }
    }
    let elapsed = started.elapsed();
    pacer.join().expect("the pacing thread does not panic");
    all.timings.sort_unstable_by_key(|t| t.due);
    let (latency, service) = Percentiles::of_timings(all.timings.iter());
    Ok(LoadReport {
        scheduled: total,
        ok: all.ok,
        errors: all.errors,
        first_error: all.first_error,
        body_bytes: all.body_bytes,
        latency,
        service,
        timings: all.timings,
        started,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::TestCa;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let p = Percentiles::from_samples(&mut samples).expect("samples");
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, ms(50));
        assert_eq!(p.p90, ms(90));
        assert_eq!(p.p99, ms(99));
        assert_eq!(p.p999, ms(100));
        assert_eq!(p.max, ms(100));
        // Sorted in place.
        assert_eq!(samples[0], ms(1));
    }

    #[test]
    fn percentile_ranks_round_up_and_hit_exact_boundaries() {
        let thousand: Vec<Duration> = (1..=1000).map(ms).collect();
        assert_eq!(percentile(&thousand, 99.9), ms(999));
        assert_eq!(percentile(&thousand, 99.0), ms(990));
        assert_eq!(percentile(&thousand, 100.0), ms(1000));
        let ten: Vec<Duration> = (1..=10).map(ms).collect();
        // ⌈0.5 · 10⌉ = 5, ⌈0.99 · 10⌉ = 10, ⌈0.91 · 10⌉ = 10, ⌈0.9 · 10⌉ = 9.
        assert_eq!(percentile(&ten, 50.0), ms(5));
        assert_eq!(percentile(&ten, 99.0), ms(10));
        assert_eq!(percentile(&ten, 91.0), ms(10));
        assert_eq!(percentile(&ten, 90.0), ms(9));
        // A tiny percentile is still the first sample, never out of bounds.
        assert_eq!(percentile(&ten, 0.001), ms(1));
        assert_eq!(percentile(&[ms(7)], 99.9), ms(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(Percentiles::from_samples(&mut []), None);
    }

    #[test]
    fn schedule_is_rate_times_duration() {
        let spec = LoadSpec {
            rate_per_sec: 1000.0,
            duration: Duration::from_secs(30),
            connections: 1,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(spec.total_requests(), 30_000);
        assert_eq!(spec.scheduled_offset(0), Duration::ZERO);
        assert_eq!(spec.scheduled_offset(1500), Duration::from_millis(1500));
        let odd = LoadSpec {
            rate_per_sec: 3.0,
            duration: ms(1000),
            ..spec
        };
        assert_eq!(odd.total_requests(), 3);
    }

    /// How the test server answers.
    #[derive(Clone, Copy)]
    enum Behavior {
        Ok,
        /// Every `n`-th request (1-based) gets a 500.
        FailEvery(u64),
        /// Answers after this long.
        Slow(Duration),
    }

    struct TestServer {
        addr: SocketAddr,
        ca: TestCa,
        arrivals: Arc<std::sync::Mutex<Vec<Instant>>>,
        connections: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn server(behavior: Behavior) -> TestServer {
        crate::pki::install_crypto_provider();
        let ca = TestCa::new("loadgen-test-ca").expect("CA");
        let cert = ca
            .server_cert("localhost", &["localhost".into(), "127.0.0.1".into()])
            .expect("server cert");
        let acceptor =
            tokio_rustls::TlsAcceptor::from(cert.server_config().expect("server config"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicU64::new(0));
        let count = Arc::new(AtomicU64::new(0));
        let (arr, conns) = (arrivals.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::Relaxed);
                let (acceptor, arrivals, count) = (acceptor.clone(), arr.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (arrivals, count) = (arrivals.clone(), count.clone());
                        async move {
                            arrivals.lock().expect("lock").push(Instant::now());
                            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                            let status = match behavior {
                                Behavior::FailEvery(k) if n % k == 0 => {
                                    StatusCode::INTERNAL_SERVER_ERROR
                                }
                                Behavior::Slow(d) => {
                                    tokio::time::sleep(d).await;
                                    StatusCode::OK
                                }
                                _ => StatusCode::OK,
                            };
                            let body = format!("{} {}", req.uri().path(), n);
                            let response = hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .expect("response");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestServer {
            addr,
            ca,
            arrivals,
            connections,
            task,
        }
    }

    async fn target_for(server: &TestServer, trust: TlsTrust) -> Target {
        let url = format!("https://localhost:{}/probe", server.addr.port());
        Target::from_url(&url, Some(client_tls(trust).expect("tls")))
            .await
            .expect("target")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_every_request_no_earlier_than_scheduled() {
        let server = server(Behavior::Ok).await;
        let target = target_for(&server, TlsTrust::Roots(server.ca.root_store())).await;
        let spec = LoadSpec {
            rate_per_sec: 200.0,
            duration: ms(500),
            connections: 4,
            timeout: Duration::from_secs(5),
        };
        let report = run(&target, &spec).await.expect("run");
        assert_eq!(report.scheduled, 100);
        assert_eq!(report.ok, 100, "first error: {:?}", report.first_error);
        assert_eq!(report.errors, 0);
        // Every body is "/probe <n>": 8 or 9 bytes for n below 100, 10 for 100.
        assert!(report.body_bytes >= 100 * 8);
        let latency = report.latency.expect("latencies");
        assert_eq!(latency.count, 100);
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        let service = report.service.expect("service times");
        assert!(
            service.max <= latency.max,
            "service time never exceeds latency from schedule"
        );
        // The connections were opened up front and kept alive.
        assert_eq!(server.connections.load(Ordering::Relaxed), 4);
        let mut arrivals = server.arrivals.lock().expect("lock").clone();
        arrivals.sort();
        assert_eq!(arrivals.len(), 100);
        for (k, at) in arrivals.iter().enumerate() {
            // The k-th arrival (in time order) cannot precede the k-th scheduled instant.
            let due = report.started + spec.scheduled_offset(k as u64);
            assert!(
                *at >= due,
                "request {k} arrived {:?} before it was due",
                due - *at
            );
        }
        // The last request was not due before 495 ms, so the run cannot have been shorter.
        assert!(report.elapsed >= spec.scheduled_offset(99));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queueing_behind_a_slow_server_counts_as_latency() {
        // One connection, 20 ms per response, a request due every 10 ms: the server falls
        // further behind with each request. Twenty requests need at least 400 ms of service;
        // the last was due at 190 ms, so its latency from schedule is at least 210 ms, while no
        // single request takes much longer than 20 ms to serve.
        let server = server(Behavior::Slow(ms(20))).await;
        let target = target_for(&server, TlsTrust::AcceptAny).await;
        let spec = LoadSpec {
            rate_per_sec: 100.0,
            duration: ms(200),
            connections: 1,
            timeout: Duration::from_secs(5),
        };
        let report = run(&target, &spec).await.expect("run");
        assert_eq!((report.ok, report.errors), (20, 0));
        let latency = report.latency.expect("latencies");
        let service = report.service.expect("service times");
        assert!(latency.max >= ms(210), "latency max {:?}", latency.max);
        assert!(service.p50 >= ms(20), "service p50 {:?}", service.p50);
        assert!(
            latency.max > service.max,
            "queueing time is in the latency, not the service time"
        );
        assert!(report.elapsed >= ms(400));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn error_statuses_are_counted_not_timed() {
        let server = server(Behavior::FailEvery(5)).await;
        let target = target_for(&server, TlsTrust::AcceptAny).await;
        let spec = LoadSpec {
            rate_per_sec: 500.0,
            duration: ms(100),
            connections: 2,
            timeout: Duration::from_secs(5),
        };
        let report = run(&target, &spec).await.expect("run");
        assert_eq!(report.scheduled, 50);
        assert_eq!((report.ok, report.errors), (40, 10));
        assert_eq!(report.latency.expect("latencies").count, 40);
        assert_eq!(
            report.first_error.as_deref(),
            Some("HTTP status 500 Internal Server Error")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifies_the_certificate_when_given_roots() {
        let server = server(Behavior::Ok).await;
        let other_ca = TestCa::new("unrelated-ca").expect("CA");
        let target = target_for(&server, TlsTrust::Roots(other_ca.root_store())).await;
        let err = fetch(&target)
            .await
            .expect_err("an unknown issuer is rejected");
        assert!(matches!(err, LoadError::Tls { .. }), "{err}");
        // With the right roots but a name the certificate lacks, the handshake fails too.
        let wrong_name = target_for_name(&server, "kubernetes.default").await;
        assert!(matches!(
            fetch(&wrong_name).await,
            Err(LoadError::Tls { .. })
        ));
        let good = target_for(&server, TlsTrust::Roots(server.ca.root_store())).await;
        let (status, body) = fetch(&good.with_path("/other?x=1")).await.expect("fetch");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, Bytes::from_static(b"/other 1"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_reuses_its_connection() {
        let server = server(Behavior::Ok).await;
        let mut session = Session::new(target_for(&server, TlsTrust::AcceptAny).await);
        for n in 1..=3 {
            let (status, body) = session.get("/poll").await.expect("get");
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, Bytes::from(format!("/poll {n}")));
        }
        assert_eq!(server.connections.load(Ordering::Relaxed), 1);
    }

    async fn target_for_name(server: &TestServer, name: &str) -> Target {
        target_for(server, TlsTrust::Roots(server.ca.root_store()))
            .await
            .with_server_name(name)
            .expect("name")
    }

    #[tokio::test]
    async fn rejects_unusable_urls_and_specs() {
        let tls = client_tls(TlsTrust::AcceptAny).expect("tls");
        assert!(matches!(
            Target::from_url("ftp://127.0.0.1/", Some(tls.clone())).await,
            Err(LoadError::Url { .. })
        ));
        assert!(matches!(
            Target::from_url("https://127.0.0.1/", None).await,
            Err(LoadError::Url { .. })
        ));
        let target = Target::from_url("http://127.0.0.1:9/x", None)
            .await
            .expect("http needs no TLS");
        assert_eq!(target.path(), "/x");
        let spec = LoadSpec {
            rate_per_sec: 0.0,
            duration: ms(10),
            connections: 1,
            timeout: ms(10),
        };
        assert!(matches!(run(&target, &spec).await, Err(LoadError::Spec(_))));
        let spec = LoadSpec {
            rate_per_sec: 10.0,
            connections: 0,
            ..spec
        };
        assert!(matches!(run(&target, &spec).await, Err(LoadError::Spec(_))));
    }
}
