//! File containers: GGUF, the legacy GGML/GGMF/GGJT family, and the `.meta` JSON sidecar of llm-rs.

pub mod types;

pub use types::GgmlType;
