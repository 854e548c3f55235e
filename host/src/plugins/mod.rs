//! WebAssembly plugins: the wasmtime runtime, component loading and caching, limits.
