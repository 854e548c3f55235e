//! Bindings for contract `metrics-gateway:plugin@0.3.0`, the newest: host logic uses its types
//! directly, and older versions convert into them.

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "metrics-gateway:plugin/plugin@0.3.0",
});
