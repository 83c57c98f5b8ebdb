//! http codec (sans-IO).
