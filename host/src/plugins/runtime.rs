//! The process-wide plugin runtime: one wasmtime `Engine` (pooling allocator, epoch interruption
//! driven by a ticker thread), and compiled components cached on disk and in memory.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;
use super::wit::{ContractVersion, Linkers, Pre, VersionError, contract_version};
use crate::config::PluginRuntimeConfig;
use crate::telemetry::Telemetry;

/// Period of the epoch ticker: call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Plugin instances alive at once in the pooling allocator: one per configured plugin plus one
/// being replaced. Each reserves (not commits) 4 GiB of address space for its linear memory.
pub const MAX_INSTANCES: u32 = 100;

/// Largest linear memory a plugin may be given (all a 32-bit memory can address), bytes.
pub const MAX_MEMORY_BYTES: usize = 4 << 30;

/// A component compiled for this engine, with the bindings of its contract version.
pub struct LoadedComponent {
    /// sha256 of the component file.
    pub sha256: [u8; 32],
    /// The contract version it was built against.
    pub version: ContractVersion,
    /// Pre-instantiated: imports resolved and exports type-checked once.
    pub pre: Pre,
}

/// Why a component could not be loaded (the caller adds the plugin and file).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Cranelift or the validator rejected it.
    #[error("compiling: {0}")]
    Compile(String),
    /// Its contract version is not supported.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// Its imports or exports do not match its contract version.
    #[error("linking against contract {version}: {message}")]
    Link {
        /// The contract version.
        version: &'static str,
        /// What did not match.
        message: String,
    },
}

/// The engine, its ticker and the compiled-component caches; one per process.
pub struct PluginRuntime {
    engine: Engine,
    linkers: Linkers,
    cache_dir: PathBuf,
    /// Hex sha256 of the engine's `precompile_compatibility_hash`, part of artifact names.
    engine_key: String,
    loaded: Mutex<HashMap<[u8; 32], Weak<LoadedComponent>>>,
    telemetry: Telemetry,
    _ticker: Ticker,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// Creates the engine (pooling allocator, or on-demand allocation when the address space
    /// cannot be reserved), starts the epoch ticker and prepares the artifact cache directory.
    pub fn new(
        config: &PluginRuntimeConfig,
        telemetry: &Telemetry,
    ) -> Result<Arc<PluginRuntime>, PluginError> {
        let engine = match Engine::new(&engine_config(true)) {
            Ok(engine) => engine,
            Err(err) => {
                tracing::warn!(
                    "plugin runtime: pooling allocator unavailable ({err:#}); allocating instances on demand"
                );
                Engine::new(&engine_config(false))
                    .map_err(|e| PluginError::Engine(format!("{e:#}")))?
            }
        };
        let linkers = Linkers::new(&engine).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let cache_dir = prepare_cache_dir(config.cache_dir.as_deref())?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        let ticker = Ticker::start(engine.clone())
            .map_err(|e| PluginError::Engine(format!("starting the epoch ticker thread: {e}")))?;
        Ok(Arc::new(PluginRuntime {
            engine,
            linkers,
            cache_dir,
            engine_key,
            loaded: Mutex::new(HashMap::new()),
            telemetry: telemetry.clone(),
            _ticker: ticker,
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The self-metrics.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The directory of compiled artifacts.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The component in `bytes`, compiled: from memory when another plugin uses the same file,
    /// else from the artifact cache, else compiled now (slow: call from a blocking thread).
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedComponent>, LoadError> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(loaded) = self.lock_loaded().get(&sha256).and_then(Weak::upgrade) {
            return Ok(loaded);
        }
        let component = self.component(&sha256, bytes)?;
        let version = contract_version(&self.engine, &component)?;
        let pre = Pre::new(&self.linkers, version, &component).map_err(|e| LoadError::Link {
            version: version.as_str(),
            message: format!("{e:#}"),
        })?;
        let loaded = Arc::new(LoadedComponent {
            sha256,
            version,
            pre,
        });
        let mut map = self.lock_loaded();
        map.retain(|_, weak| weak.strong_count() > 0);
        map.insert(sha256, Arc::downgrade(&loaded));
        Ok(loaded)
    }

    /// Compiles `bytes` without any cache (for benchmarks of the compiler).
    pub fn compile_uncached(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Weak<LoadedComponent>>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The artifact path of a component.
    fn artifact_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.cache_dir
            .join(format!("{}-{}.cwasm", hex::encode(sha256), self.engine_key))
    }

    /// Loads the cached artifact, or compiles and caches it.
    fn component(&self, sha256: &[u8; 32], bytes: &[u8]) -> Result<Component, LoadError> {
        let path = self.artifact_path(sha256);
        match load_artifact(&self.engine, &path) {
            Ok(Some(component)) => {
                tracing::debug!(path = %path.display(), "plugin component loaded from cache");
                return Ok(component);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                path = %path.display(),
                "cached plugin artifact unusable ({e:#}); recompiling"
            ),
        }
        let started = Instant::now();
        let component = self.compile_uncached(bytes)?;
        tracing::info!(
            sha256 = %hex::encode(sha256),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled plugin component"
        );
        match component.serialize() {
            Ok(payload) => {
                if let Err(e) = write_artifact(&self.cache_dir, &path, &payload) {
                    tracing::warn!(path = %path.display(), "caching compiled plugin: {e}");
                }
            }
            Err(e) => tracing::warn!("serializing compiled plugin: {e:#}"),
        }
        Ok(component)
    }
}

/// The digest file beside an artifact: the BLAKE3 hash of the artifact's bytes.
fn digest_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".blake3");
    PathBuf::from(name)
}

/// The artifact at `path`, memory-mapped, if it and its digest file exist and agree.
/// `Ok(None)` when it is not cached; an error when it is damaged or wasmtime refuses it
/// (another version or configuration).
fn load_artifact(engine: &Engine, path: &Path) -> anyhow::Result<Option<Component>> {
    let expected = match std::fs::read(digest_path(path)) {
        Ok(digest) => digest,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context("reading its digest")),
    };
    let mut hasher = blake3::Hasher::new();
    match hasher.update_mmap(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context("reading it")),
    }
    anyhow::ensure!(
        hasher.finalize().as_bytes().as_slice() == expected.as_slice(),
        "its content does not match its digest"
    );
    deserialize_checked(engine, path)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("deserializing: {e:#}"))
}

/// Deserializes (memory-maps) an artifact whose integrity was checked.
#[allow(unsafe_code)]
fn deserialize_checked(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is an artifact this process family wrote itself with
    // `Component::serialize` into its private (0700) cache directory, atomically (tmp + rename,
    // never rewritten in place), and its BLAKE3 digest has just been verified, so it is a
    // complete, unmodified wasmtime artifact; wasmtime itself refuses artifacts of another
    // version or configuration.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Writes `payload` to `path` and its digest beside it, each atomically (a temporary file,
/// then a rename): the artifact first, so a digest never names an artifact not yet in place.
fn write_artifact(dir: &Path, path: &Path, payload: &[u8]) -> std::io::Result<()> {
    persist(dir, path, payload)?;
    persist(dir, &digest_path(path), blake3::hash(payload).as_bytes())
}

/// Writes `bytes` to `path` atomically.
fn persist(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The configured cache directory, or `$XDG_CACHE_HOME` / `~/.cache` +
/// `metrics-gateway/plugins`, or the temporary directory; created private (0700) when missing.
fn prepare_cache_dir(configured: Option<&Path>) -> Result<PathBuf, PluginError> {
    if let Some(dir) = configured {
        create_private_dir(dir).map_err(|source| PluginError::CacheDir {
            path: dir.to_owned(),
            source,
        })?;
        return Ok(dir.to_owned());
    }
    let user_cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map(|d| d.join("metrics-gateway").join("plugins"));
    if let Some(dir) = user_cache {
        match create_private_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => tracing::warn!(
                path = %dir.display(),
                "plugin cache directory unusable ({e}); using the temporary directory"
            ),
        }
    }
    let dir = std::env::temp_dir().join("metrics-gateway-plugins");
    create_private_dir(&dir).map_err(|source| PluginError::CacheDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn engine_config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.concurrency_support(false);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_INSTANCES)
            .total_memories(MAX_INSTANCES)
            // A component made by wit-component holds a few core instances and tables (the
            // module, plus shims for its imports).
            .total_core_instances(MAX_INSTANCES * 8)
            .total_tables(MAX_INSTANCES * 4)
            .max_memory_size(MAX_MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Feeds a `Hash` value into sha256, for a digest stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
