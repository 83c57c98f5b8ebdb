//! hls codec (sans-IO).
