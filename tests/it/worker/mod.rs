//! The worker side: bus in, signed HTTP out, and what it keeps when delivery fails.

mod acks;
mod cluster;
mod dead_letters;
mod delivery;
mod destinations;
mod durable;
mod end_to_end;
mod faults;
mod filters;
mod options;
mod rate_limit;
mod shapes;
mod template_limits;
