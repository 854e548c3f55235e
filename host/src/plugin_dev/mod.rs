//! Tools for plugin authors: `plugin build` (crate → component) and `plugin new` (a crate from
//! the template).

pub mod build;
pub mod new;
