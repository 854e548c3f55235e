//! Bindings for contract `metrics-gateway:plugin@0.1.0`, the newest: host logic uses its types
//! directly, and older versions (when there are some) convert into them.

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "metrics-gateway:plugin/plugin@0.1.0",
});
