//! The `.meta` JSON sidecar that llm-rs 0.2.15 writes beside every model file.
