//! EventBridge event patterns (placeholder until implemented).
