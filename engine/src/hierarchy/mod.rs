//! Site hierarchies over the WSUS server-server protocol (MS-WSUSSS,
//! `engine/docs/hierarchy.md`): `server` answers a child's SOAP calls from this site's
//! store, `client` is the `upstream` catalog source a child syncs its parent with (`session` its
//! authenticated, retried calls),
//! `tree` is the status the children roll up, `links` the notifications and reports along a link, `cookie` signs the protocol's cookies and
//! `soap` frames the messages
//! and `revisions` reads the (possibly very long) revision lists as a stream.

pub mod client;
pub mod cookie;
mod languages;
pub mod links;
mod revisions;
mod selection;
pub mod server;
pub mod session;
pub mod soap;
pub mod tree;

pub use client::{UpstreamCursor, UpstreamSource};
pub use server::{LinkEvent, Service, SoapReply, UpstreamServer};
pub use tree::{ChildRecord, Link, SiteTree, SiteView, own_view, site_tree, tree_path};
