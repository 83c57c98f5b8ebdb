//! flv codec (sans-IO).
