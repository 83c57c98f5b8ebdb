//! glommio drivers: accept loops and per-connection tasks that feed the sans-IO codecs.
