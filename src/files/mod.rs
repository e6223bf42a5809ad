//! Everything on disk: the one owner of the log folder ([`folder`]), start-up ([`startup`]),
//! rotated names and period boundaries ([`rotation`]), which files retention deletes
//! ([`retention`]), compression ([`compress`], and `zst` with the `zstd` feature) and the
//! janitor thread that runs the last two ([`janitor`]).

pub(crate) mod compress;
pub(crate) mod folder;
pub(crate) mod janitor;
pub(crate) mod retention;
pub(crate) mod rotation;
pub(crate) mod startup;
#[cfg(feature = "zstd")]
pub(crate) mod zst;
