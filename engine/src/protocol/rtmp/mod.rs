//! rtmp codec (sans-IO).
