//! The controller's view of the lease store (PostgreSQL): who holds a
//! worker's lease, at which fencing epoch. The holders themselves run
//! inside the containers (`images/rootfs/usr/lib/webdock/lease`); the
//! controller only reads, to decide whether a worker on a host that does
//! not answer is already dead (nobody holds its lease) and for `status`.

use crate::config::Config;
use crate::out::Out;
use crate::roles::Role;

/// Whether nobody holds `role`'s lease: a daemon on a host that does not
/// answer is then already dead. Without `[lease]`: never free (webdock
/// cannot know).
pub async fn free_for(cfg: &Config, role: &Role, out: Out) -> anyhow::Result<bool> {
    let _ = (cfg, role, out);
    Ok(false)
}
