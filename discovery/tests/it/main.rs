//! Discovery and the guarded client against in-process fake servers on loopback: every metadata
//! layout of the conformance suite, and the faults a real peer cannot be made to produce.

#![expect(clippy::expect_used, reason = "test helpers fail loudly, naming what they expected")]

mod fake;
mod layouts;
mod metadata_fuzz;
mod ssrf;
mod verify;
