//! `[fs]`: the roots the filesystem tools may touch and their size limits.
//! The shell adapter reads the roots too: a command sees the same files.

use oi_kernel::config::{Section, SectionRule};
use serde::{Deserialize, Serialize};

/// The filesystem adapter (`fs_*` tools).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FsConfig {
    /// Directories the tools may touch besides `<data>/workspace`.
    pub roots: Vec<String>,
    /// Largest piece of a file one `fs_read_file` returns.
    pub max_read_bytes: u64,
    /// Largest content one `fs_write_file` accepts.
    pub max_write_bytes: u64,
    /// Matches one `fs_search` returns at most.
    pub search_max_results: u32,
    /// Files larger than this are not searched by content.
    pub search_max_file_bytes: u64,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<FsConfig>()];

impl Section for FsConfig {
    const NAME: &'static str = "fs";
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_kernel::config::Config;
    use std::path::Path;

    #[test]
    fn the_shipped_section_and_its_type_errors() {
        let d: FsConfig = Config::defaults().section().unwrap();
        assert_eq!(d.max_read_bytes, 16384);
        let e = Config::parse_checked(
            Some("[fs]\nroots = \"/srv\"\n"),
            Path::new("c.toml"),
            Some(SECTIONS),
        )
        .unwrap_err();
        assert_eq!(e.location, Some((2, 9)), "{e}");
    }
}
