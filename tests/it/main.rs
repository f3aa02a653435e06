//! The integration suite: one binary, real parts.

mod helpers;

mod repository;
