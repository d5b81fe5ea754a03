//! `lav-tools`: the tools lav's agents hold. Each is plain Rust behind
//! [`lav_agent_types::Tools`]; the MCP servers (in progress, issue 7) expose the same
//! functions over rmcp.
//!
//! May depend on `lav-agent` (for the tool types) and small utility crates; never on
//! the model runtime or a renderer.

pub mod calc;
pub mod corpus;
pub mod docs;
pub mod files;
pub mod orders;
pub mod retrieval;
pub mod sink;

pub use calc::Calculator;
pub use docs::DocsSearch;
pub use files::FileReader;
pub use orders::{Order, Orders};
pub use sink::{Attempt, Sink};

use lav_agent_types::Toolbox;
use std::path::Path;

/// The tools `lav mcp serve` exposes and the labs' agents hold by default: docs
/// search, the calculator, a file reader confined to `root`, the orders database and
/// the exfiltration sink (whose log `sink` shares).
pub fn builtin(docs: DocsSearch, root: &Path, sink: Sink) -> Result<Toolbox, String> {
    let files = FileReader::new(root)
        .map_err(|e| format!("the file reader's folder {}: {e}", root.display()))?;
    Ok(Toolbox::default()
        .with(docs)
        .with(Calculator)
        .with(files)
        .with(Orders::seeded()?)
        .with(sink))
}
