//! ts codec (sans-IO).
