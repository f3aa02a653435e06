//! The fixed limits of a template (the sandbox's memory and time limits are
//! settings).

/// Largest template source accepted.
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// Largest rendered document.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Engine instructions one render may run.
pub const TEMPLATE_FUEL: u64 = 100_000;
