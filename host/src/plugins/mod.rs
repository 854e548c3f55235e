//! WebAssembly plugins: the wasmtime runtime, component loading and caching, limits, and the
//! per-cycle run of the configured plugins.
//!
//! [`PluginRuntime`] (one per process) owns the engine and the compiled-artifact cache;
//! [`PluginSet`] (one per config) loads and configures the plugins and runs them every cycle,
//! turning their output into [`PluginMetrics`](crate::store::custom::PluginMetrics).

pub mod fixture;
pub mod input;
pub mod instance;
pub mod label_sets;
pub mod output;
pub mod plan;
pub mod runtime;
pub mod set;
pub mod wit;

use std::path::PathBuf;

pub use runtime::PluginRuntime;
pub use set::PluginSet;

/// Why the runtime or a plugin could not be set up. Plugin errors name the plugin and its file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The wasmtime engine could not be created.
    #[error("creating the WebAssembly engine: {0}")]
    Engine(String),
    /// The compiled-artifact cache directory could not be created.
    #[error("plugin cache directory {}: {source}", path.display())]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component file could not be read.
    #[error("plugin {plugin}: reading {}: {source}", path.display())]
    Read {
        /// The plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the one the config pins.
    #[error("plugin {plugin}: {} has sha256 {actual}, but the config expects {expected}", path.display())]
    Sha256Mismatch {
        /// The plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The configured digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The component does not compile or link.
    #[error("plugin {plugin}: {}: {message}", path.display())]
    Compile {
        /// The plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The component was built against a contract this host does not support.
    #[error("plugin {plugin}: {}: {error}", path.display())]
    Version {
        /// The plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The versions involved.
        error: wit::VersionError,
    },
    /// Instantiating or configuring failed, or the plan was refused.
    #[error("plugin {plugin}: {}: {message}", path.display())]
    Configure {
        /// The plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The plugin's entry in the config cannot be used.
    #[error("plugin {plugin}: {message}")]
    Config {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests;
