//! Support for the cross-crate tests in `tests/` (the terminal UI over every lab, the
//! forward pass against llama.cpp and candle, the agent runtime end to end): the test
//! kit, and sessions over the catalogue the command line assembles from every track.

pub use lav_testkit::*;

/// Every track's labs, as `lav` registers them.
pub const TRACKS: &[Register] = &[
    lav_labs_llm::register,
    lav_labs_serving::register,
    lav_labs_gpu::register,
    lav_labs_agents::register,
];

/// Opens lab `id` (any track) on the test models.
pub fn session(id: &str) -> lav_lab::Session {
    session_in(TRACKS, id)
}
