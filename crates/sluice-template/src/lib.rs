//! Input templates (placeholder until implemented).
