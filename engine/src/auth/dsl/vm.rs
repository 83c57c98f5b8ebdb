//! Runs compiled checks against one request.
